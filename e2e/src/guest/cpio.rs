//! A writer of the `newc` cpio format the kernel unpacks as an initramfs: directories,
//! regular files and symbolic links, with an archive trailer. Archives can be concatenated;
//! the kernel unpacks each in turn.

/// One archive being written.
#[derive(Debug, Default)]
pub struct CpioWriter {
    bytes: Vec<u8>,
    inode: u32,
}

const DIR: u32 = 0o040_000;
const FILE: u32 = 0o100_000;
const SYMLINK: u32 = 0o120_000;

impl CpioWriter {
    /// An empty archive.
    pub fn new() -> Self {
        Self::default()
    }

    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.inode += 1;
        let name = name.trim_start_matches('/');
        let fields = [
            self.inode,
            mode,
            0,                     // uid
            0,                     // gid
            1,                     // nlink
            0,                     // mtime
            data.len() as u32,     // filesize
            0,                     // devmajor
            0,                     // devminor
            0,                     // rdevmajor
            0,                     // rdevminor
            name.len() as u32 + 1, // namesize, with its NUL
            0,                     // check
        ];
        self.bytes.extend_from_slice(b"070701");
        for field in fields {
            self.bytes
                .extend_from_slice(format!("{field:08X}").as_bytes());
        }
        self.bytes.extend_from_slice(name.as_bytes());
        self.bytes.push(0);
        self.pad();
        self.bytes.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.bytes.len().is_multiple_of(4) {
            self.bytes.push(0);
        }
    }

    /// A directory (parents are not created implicitly: add them first).
    pub fn dir(&mut self, path: &str) {
        self.entry(path, DIR | 0o755, &[]);
    }

    /// A regular file with permission bits `perm`.
    pub fn file(&mut self, path: &str, perm: u32, data: &[u8]) {
        self.entry(path, FILE | (perm & 0o7777), data);
    }

    /// A symbolic link at `path` pointing to `target`.
    pub fn symlink(&mut self, path: &str, target: &str) {
        self.entry(path, SYMLINK | 0o777, target.as_bytes());
    }

    /// The archive with its trailer.
    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[]);
        while !self.bytes.len().is_multiple_of(512) {
            self.bytes.push(0);
        }
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_has_the_newc_magic_a_padded_name_and_padded_data() {
        let mut w = CpioWriter::new();
        w.file("/init", 0o755, b"abc");
        let bytes = w.finish();
        assert_eq!(&bytes[..6], b"070701");
        // 6 + 13 * 8 = 110 header bytes, then "init\0" padded to 116, then the data.
        assert_eq!(&bytes[110..115], b"init\0");
        assert_eq!(&bytes[116..119], b"abc");
        assert_eq!(bytes.len() % 512, 0);
        let trailer = bytes
            .windows(10)
            .position(|w| w == b"TRAILER!!!")
            .expect("a trailer");
        assert!(trailer > 119);
    }
}
