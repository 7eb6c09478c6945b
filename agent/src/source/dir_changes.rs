//! Changes to a directory's entries, told by inotify: what wakes the standalone source instead
//! of a poll. Only completed writes count (a file closed after writing, created, moved, deleted,
//! its attributes changed), so a reload does not see a file half written.

use std::io;
use std::path::Path;

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use tokio::io::unix::AsyncFd;

use crate::net::sys::{OwnedInotify, register_inotify};

/// An inotify watch on one directory.
pub struct DirChanges {
    fd: AsyncFd<OwnedInotify>,
}

/// What a wait for changes found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Something in the directory changed.
    Entries,
    /// The watch ended (the directory was deleted, moved or unmounted): poll from now on.
    WatchEnded,
}

impl DirChanges {
    /// Starts watching `dir`.
    pub fn watch(dir: &Path) -> io::Result<Self> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
        inotify.add_watch(
            dir,
            AddWatchFlags::IN_CLOSE_WRITE
                | AddWatchFlags::IN_CREATE
                | AddWatchFlags::IN_DELETE
                | AddWatchFlags::IN_MOVED_FROM
                | AddWatchFlags::IN_MOVED_TO
                | AddWatchFlags::IN_ATTRIB
                | AddWatchFlags::IN_DELETE_SELF
                | AddWatchFlags::IN_MOVE_SELF,
        )?;
        Ok(Self {
            fd: register_inotify(inotify)?,
        })
    }

    /// Waits for the next changes and takes every event queued so far.
    pub async fn changed(&mut self) -> io::Result<Change> {
        loop {
            let mut guard = self.fd.readable_mut().await?;
            match guard.try_io(|fd| {
                fd.get_ref()
                    .inotify()
                    .read_events()
                    .map_err(io::Error::from)
            }) {
                Ok(Ok(events)) => {
                    let ended = events.iter().any(|event| {
                        event.mask.intersects(
                            AddWatchFlags::IN_IGNORED
                                | AddWatchFlags::IN_DELETE_SELF
                                | AddWatchFlags::IN_MOVE_SELF,
                        )
                    });
                    return Ok(if ended {
                        Change::WatchEnded
                    } else {
                        Change::Entries
                    });
                }
                Ok(Err(error)) => return Err(error),
                Err(_would_block) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_file_written_in_the_directory_is_a_change_and_removing_the_directory_ends_the_watch()
    {
        let dir =
            std::env::temp_dir().join(format!("kube-vrrp-dir-changes-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut changes = DirChanges::watch(&dir).unwrap();
        std::fs::write(dir.join("vip.yaml"), "kind: VirtualIP\n").unwrap();
        let change = tokio::time::timeout(Duration::from_secs(10), changes.changed()).await;
        assert_eq!(change.unwrap().unwrap(), Change::Entries);
        std::fs::remove_dir_all(&dir).unwrap();
        let mut seen = Vec::new();
        while !seen.contains(&Change::WatchEnded) {
            let change = tokio::time::timeout(Duration::from_secs(10), changes.changed()).await;
            seen.push(change.unwrap().unwrap());
        }
        assert_eq!(seen.last(), Some(&Change::WatchEnded));
    }
}
