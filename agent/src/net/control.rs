//! Control messages (`struct cmsghdr` sequences) as plain bytes: one laid out for `sendmsg`,
//! and the ones `recvmsg` filled in read back, without the C library's `CMSG_*` macros. Pure.
//!
//! On Linux a control message is a `cmsghdr` (its length as a `size_t`, then level and type as
//! `int`s) followed by its data at the header's size rounded up to a `size_t`; the next one
//! starts at the message's length rounded up the same way (`CMSG_LEN`, `CMSG_SPACE`).

const WORD: usize = std::mem::size_of::<usize>();
const INT: usize = std::mem::size_of::<i32>();
/// Where a message's data starts: `CMSG_LEN(0)`.
const HEADER: usize = (WORD + 2 * INT).div_ceil(WORD) * WORD;

fn aligned(len: usize) -> usize {
    len.div_ceil(WORD) * WORD
}

/// Writes one control message (`level`, `kind`, then `data`) at the start of `room` and returns
/// its `CMSG_SPACE`. `room` must hold it (a caller's fixed buffer, sized for its messages).
pub fn write(room: &mut [u8], level: i32, kind: i32, data: &[u8]) -> usize {
    let len = HEADER + data.len();
    room[..WORD].copy_from_slice(&len.to_ne_bytes());
    room[WORD..WORD + INT].copy_from_slice(&level.to_ne_bytes());
    room[WORD + INT..HEADER].copy_from_slice(&kind.to_ne_bytes());
    room[HEADER..len].copy_from_slice(data);
    aligned(len)
}

/// The control messages in the `control_len` bytes `recvmsg` filled in: `(level, type, data)`
/// each. A message whose length runs past the bytes, or is shorter than a header, ends the
/// sequence.
pub fn read(filled: &[u8]) -> impl Iterator<Item = (i32, i32, &[u8])> {
    let mut rest = filled;
    std::iter::from_fn(move || {
        let len = usize::from_ne_bytes(rest.get(..WORD)?.try_into().ok()?);
        if len < HEADER || len > rest.len() {
            return None;
        }
        let level = i32::from_ne_bytes(rest[WORD..WORD + INT].try_into().ok()?);
        let kind = i32::from_ne_bytes(rest[WORD + INT..HEADER].try_into().ok()?);
        let data = &rest[HEADER..len];
        rest = rest.get(aligned(len)..).unwrap_or_default();
        Some((level, kind, data))
    })
}

/// A `u32` message's value (`SO_RXQ_OVFL`).
pub fn u32_of(data: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(data.get(..4)?.try_into().ok()?))
}

/// A `struct timespec` message's value as the time since the epoch (`SCM_TIMESTAMPNS`): `None`
/// for a negative or malformed one.
pub fn timespec_of(data: &[u8]) -> Option<std::time::Duration> {
    const FIELD: usize = std::mem::size_of::<i64>();
    let seconds = i64::from_ne_bytes(data.get(..FIELD)?.try_into().ok()?);
    let nanos = i64::from_ne_bytes(data.get(FIELD..2 * FIELD)?.try_into().ok()?);
    let seconds = u64::try_from(seconds).ok()?;
    let nanos = u32::try_from(nanos).ok().filter(|n| *n < 1_000_000_000)?;
    Some(std::time::Duration::new(seconds, nanos))
}

/// An `int` message's value (`IPV6_HOPLIMIT`).
pub fn int_of(data: &[u8]) -> Option<i32> {
    Some(i32::from_ne_bytes(data.get(..INT)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use nix::libc;

    use super::*;

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_pktinfo_control_message_is_laid_out_as_cmsg_space_says() {
        let mut room = [0u8; 64];
        let info = [7u8; 12];
        let space = write(&mut room, libc::IPPROTO_IP, libc::IP_PKTINFO, &info);
        assert_eq!(space, 32, "CMSG_SPACE(sizeof(struct in_pktinfo))");
        assert_eq!(room[..8], 28usize.to_ne_bytes(), "cmsg_len: CMSG_LEN(12)");
        assert_eq!(room[8..12], libc::IPPROTO_IP.to_ne_bytes());
        assert_eq!(room[12..16], libc::IP_PKTINFO.to_ne_bytes());
        assert_eq!(room[16..28], info);
        assert_eq!(room[28..32], [0; 4], "padding");
        let space = write(&mut room, libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, &[1; 20]);
        assert_eq!(space, 40, "CMSG_SPACE(sizeof(struct in6_pktinfo))");
        assert_eq!(room[..8], 36usize.to_ne_bytes());
    }

    #[test]
    fn messages_written_one_after_another_are_read_back_in_order() {
        let mut room = [0u8; 128];
        let mut len = write(&mut room, libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, &[9; 20]);
        len += write(
            &mut room[len..],
            libc::IPPROTO_IPV6,
            libc::IPV6_HOPLIMIT,
            &255i32.to_ne_bytes(),
        );
        len += write(
            &mut room[len..],
            libc::SOL_SOCKET,
            libc::SO_RXQ_OVFL,
            &7u32.to_ne_bytes(),
        );
        let read: Vec<(i32, i32, &[u8])> = read(&room[..len]).collect();
        assert_eq!(read.len(), 3);
        assert_eq!(
            read[0],
            (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, &[9u8; 20][..])
        );
        assert_eq!(read[1].1, libc::IPV6_HOPLIMIT);
        assert_eq!(int_of(read[1].2), Some(255));
        assert_eq!(
            (read[2].0, read[2].1),
            (libc::SOL_SOCKET, libc::SO_RXQ_OVFL)
        );
        assert_eq!(u32_of(read[2].2), Some(7));
    }

    #[test]
    fn a_timespec_reads_as_the_time_since_the_epoch_and_a_negative_or_short_one_as_none() {
        let timespec = |seconds: i64, nanos: i64| {
            let mut data = seconds.to_ne_bytes().to_vec();
            data.extend_from_slice(&nanos.to_ne_bytes());
            data
        };
        assert_eq!(
            timespec_of(&timespec(1_800_000_000, 250_000_000)),
            Some(std::time::Duration::new(1_800_000_000, 250_000_000))
        );
        assert_eq!(timespec_of(&timespec(-1, 0)), None, "before the epoch");
        assert_eq!(
            timespec_of(&timespec(1, 1_000_000_000)),
            None,
            "nanoseconds past a second"
        );
        assert_eq!(timespec_of(&timespec(1, -1)), None);
        assert_eq!(timespec_of(&timespec(1, 0)[..12]), None, "cut short");
    }

    #[test]
    fn nothing_filled_reads_as_no_message_and_a_broken_length_ends_the_sequence() {
        assert_eq!(read(&[]).count(), 0);
        let mut room = [0u8; 64];
        let len = write(
            &mut room,
            libc::SOL_SOCKET,
            libc::SO_RXQ_OVFL,
            &[1, 0, 0, 0],
        );
        assert_eq!(
            read(&room[..len - 8]).count(),
            0,
            "cut short: its length runs past"
        );
        room[..WORD].copy_from_slice(&3usize.to_ne_bytes());
        assert_eq!(
            read(&room[..len]).count(),
            0,
            "a length shorter than a header"
        );
        room[..WORD].copy_from_slice(&usize::MAX.to_ne_bytes());
        assert_eq!(read(&room[..len]).count(), 0, "a length past everything");
        assert_eq!(u32_of(&[1, 2]), None);
    }
}
