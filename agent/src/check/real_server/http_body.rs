//! The body of an HTTP/1.1 answer to a GET, framed as RFC 9112 §6.3 says (none for 204 and
//! 304, chunked, `Content-Length`, or up to the close), counted against the size cap and,
//! with a digest to compare, hashed. Pure: bytes in as they arrive, a verdict out.

use kube_vrrp_crds::CheckResult;

use super::outcome::Outcome;

/// How the body's end is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (204, 304).
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Everything up to the close.
    UntilClose,
}

/// The framing of an answer with `status` and `headers`, or why they are invalid.
pub fn framing(status: u16, headers: &[httparse::Header<'_>]) -> Result<Framing, String> {
    if status == 204 || status == 304 || (100..200).contains(&status) {
        return Ok(Framing::Empty);
    }
    let values = |name: &'static str| {
        headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value))
    };
    if let Some(codings) = values("transfer-encoding").next_back() {
        // Chunked must be the last coding; anything else ends at the close.
        let last = codings.rsplit(',').next().unwrap_or("").trim();
        return Ok(if last.eq_ignore_ascii_case("chunked") {
            Framing::Chunked
        } else {
            Framing::UntilClose
        });
    }
    let mut length = None;
    for value in values("content-length") {
        let parsed: u64 = value
            .trim()
            .parse()
            .map_err(|_| format!("invalid Content-Length {value:?}"))?;
        if length.is_some_and(|l| l != parsed) {
            return Err("conflicting Content-Length headers".to_owned());
        }
        length = Some(parsed);
    }
    Ok(length.map_or(Framing::UntilClose, Framing::Length))
}

/// Where a chunked body's decoding stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// In the size line's hex digits (`digits` read so far).
    Size {
        value: u64,
        digits: u8,
    },
    /// In the size line's extensions, up to its end.
    Extension {
        value: u64,
    },
    /// The size line's CR is read.
    SizeLf {
        value: u64,
    },
    /// Data bytes still to come in this chunk.
    Data(u64),
    /// After a chunk's data, before its CR.
    DataCr,
    /// After a chunk's data and CR.
    DataLf,
    /// In the trailer section; `line_start` when nothing of the current line is read yet.
    Trailer {
        line_start: bool,
    },
    /// A trailer line's CR is read.
    TrailerLf {
        line_start: bool,
    },
    Done,
}

/// Where the body's reading stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Progress {
    Length { remaining: u64 },
    Chunked(Chunk),
    UntilClose,
    Done,
}

/// A body as it is read.
pub struct Body {
    progress: Progress,
    max_bytes: u64,
    length: u64,
    digest: Option<ring::digest::Context>,
}

fn malformed_chunk() -> Outcome {
    Outcome::failed(CheckResult::InvalidResponse, "invalid chunked body")
}

impl Body {
    /// A body framed by `framing`, no longer than `max_bytes`, hashed when `hash`.
    pub fn new(framing: Framing, max_bytes: u64, hash: bool) -> Self {
        let progress = match framing {
            Framing::Empty | Framing::Length(0) => Progress::Done,
            Framing::Length(remaining) => Progress::Length { remaining },
            Framing::Chunked => Progress::Chunked(Chunk::Size {
                value: 0,
                digits: 0,
            }),
            Framing::UntilClose => Progress::UntilClose,
        };
        Self {
            progress,
            max_bytes,
            length: 0,
            digest: hash.then(|| ring::digest::Context::new(&ring::digest::SHA256)),
        }
    }

    /// Takes the next bytes of the body; `Ok(true)` once it is complete (bytes after its end
    /// are ignored), an outcome when it is too long or malformed.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<bool, Outcome> {
        if let Progress::Length { remaining } = self.progress
            && remaining > self.max_bytes.saturating_sub(self.length)
        {
            // Declared too long: no need to read it.
            return Err(self.too_large());
        }
        while !bytes.is_empty() {
            match self.progress {
                Progress::Done => break,
                Progress::UntilClose => {
                    self.data(bytes)?;
                    bytes = &[];
                }
                Progress::Length { remaining } => {
                    let take =
                        usize::try_from(remaining).map_or(bytes.len(), |r| r.min(bytes.len()));
                    self.data(&bytes[..take])?;
                    bytes = &bytes[take..];
                    let remaining = remaining - take as u64;
                    self.progress = if remaining == 0 {
                        Progress::Done
                    } else {
                        Progress::Length { remaining }
                    };
                }
                Progress::Chunked(Chunk::Data(remaining)) => {
                    let take =
                        usize::try_from(remaining).map_or(bytes.len(), |r| r.min(bytes.len()));
                    self.data(&bytes[..take])?;
                    bytes = &bytes[take..];
                    let remaining = remaining - take as u64;
                    self.progress = Progress::Chunked(if remaining == 0 {
                        Chunk::DataCr
                    } else {
                        Chunk::Data(remaining)
                    });
                }
                Progress::Chunked(state) => {
                    let next = chunk_step(state, bytes[0]).ok_or_else(malformed_chunk)?;
                    bytes = &bytes[1..];
                    self.progress = if next == Chunk::Done {
                        Progress::Done
                    } else {
                        Progress::Chunked(next)
                    };
                }
            }
        }
        Ok(self.progress == Progress::Done)
    }

    /// The connection closed: the body ends here, complete or not.
    pub fn end(&mut self) -> Result<(), Outcome> {
        match self.progress {
            Progress::Done | Progress::UntilClose => {
                self.progress = Progress::Done;
                Ok(())
            }
            _ => Err(Outcome::failed(
                CheckResult::ConnectionFailed,
                "connection closed before the answer was complete",
            )),
        }
    }

    /// The body's length so far, and its SHA-256 when it was hashed.
    pub fn finish(self) -> (u64, Option<ring::digest::Digest>) {
        (self.length, self.digest.map(ring::digest::Context::finish))
    }

    fn data(&mut self, bytes: &[u8]) -> Result<(), Outcome> {
        self.length = self.length.saturating_add(bytes.len() as u64);
        if self.length > self.max_bytes {
            return Err(self.too_large());
        }
        if let Some(digest) = &mut self.digest {
            digest.update(bytes);
        }
        Ok(())
    }

    fn too_large(&self) -> Outcome {
        Outcome::failed(
            CheckResult::BodyTooLarge,
            format!("body longer than {} bytes", self.max_bytes),
        )
    }
}

/// The chunked decoding's next state after `byte` outside chunk data; `None` when the byte
/// cannot come there. A bare LF is taken for CRLF, as most clients do.
fn chunk_step(state: Chunk, byte: u8) -> Option<Chunk> {
    let size_end = |value: u64| {
        if value == 0 {
            Chunk::Trailer { line_start: true }
        } else {
            Chunk::Data(value)
        }
    };
    Some(match state {
        Chunk::Size { value, digits } => match (byte as char).to_digit(16) {
            Some(d) if digits < 16 => Chunk::Size {
                value: value * 16 + u64::from(d),
                digits: digits + 1,
            },
            Some(_) => return None,
            None if digits == 0 => return None,
            None => match byte {
                b';' | b' ' | b'\t' => Chunk::Extension { value },
                b'\r' => Chunk::SizeLf { value },
                b'\n' => size_end(value),
                _ => return None,
            },
        },
        Chunk::Extension { value } => match byte {
            b'\r' => Chunk::SizeLf { value },
            b'\n' => size_end(value),
            _ => Chunk::Extension { value },
        },
        Chunk::SizeLf { value } => match byte {
            b'\n' => size_end(value),
            _ => return None,
        },
        Chunk::DataCr => match byte {
            b'\r' => Chunk::DataLf,
            b'\n' => Chunk::Size {
                value: 0,
                digits: 0,
            },
            _ => return None,
        },
        Chunk::DataLf => match byte {
            b'\n' => Chunk::Size {
                value: 0,
                digits: 0,
            },
            _ => return None,
        },
        Chunk::Trailer { line_start } => match byte {
            b'\r' => Chunk::TrailerLf { line_start },
            b'\n' if line_start => Chunk::Done,
            b'\n' => Chunk::Trailer { line_start: true },
            _ => Chunk::Trailer { line_start: false },
        },
        Chunk::TrailerLf { line_start } => match byte {
            b'\n' if line_start => Chunk::Done,
            b'\n' => Chunk::Trailer { line_start: true },
            _ => return None,
        },
        Chunk::Data(_) | Chunk::Done => state,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'a>(name: &'a str, value: &'a str) -> httparse::Header<'a> {
        httparse::Header {
            name,
            value: value.as_bytes(),
        }
    }

    /// A case of framing: its name, the status, the headers and the framing wanted.
    type Case<'a> = (&'a str, u16, Vec<httparse::Header<'a>>, Result<Framing, ()>);

    #[test]
    fn the_framing_follows_status_transfer_encoding_and_content_length() {
        let cases: [Case<'_>; 8] = [
            (
                "204 has no body",
                204,
                vec![header("Content-Length", "5")],
                Ok(Framing::Empty),
            ),
            ("304 has no body", 304, vec![], Ok(Framing::Empty)),
            (
                "chunked wins over a length",
                200,
                vec![
                    header("Content-Length", "5"),
                    header("transfer-encoding", "gzip, Chunked"),
                ],
                Ok(Framing::Chunked),
            ),
            (
                "a coding other than chunked last: to the close",
                200,
                vec![header("Transfer-Encoding", "chunked, gzip")],
                Ok(Framing::UntilClose),
            ),
            (
                "a length",
                200,
                vec![header("content-length", " 12 ")],
                Ok(Framing::Length(12)),
            ),
            (
                "repeated equal lengths",
                200,
                vec![header("Content-Length", "3"), header("Content-Length", "3")],
                Ok(Framing::Length(3)),
            ),
            (
                "conflicting lengths",
                200,
                vec![header("Content-Length", "3"), header("Content-Length", "4")],
                Err(()),
            ),
            (
                "nothing: to the close",
                200,
                vec![],
                Ok(Framing::UntilClose),
            ),
        ];
        for (name, status, headers, want) in cases {
            assert_eq!(framing(status, &headers).map_err(|_| ()), want, "{name}");
        }
        assert!(framing(200, &[header("Content-Length", "-1")]).is_err());
    }

    /// Feeds `parts` in turn; the outcome, or whether the body completed and its length.
    fn read(framing: Framing, max: u64, parts: &[&[u8]]) -> Result<(bool, u64), Outcome> {
        let mut body = Body::new(framing, max, false);
        let mut done = false;
        for part in parts {
            done = body.feed(part)?;
        }
        Ok((done, body.finish().0))
    }

    #[test]
    fn a_chunked_body_is_decoded_across_any_split_with_extensions_and_trailers() {
        let wire: &[u8] = b"5;name=value\r\nhello\r\n1\r\n!\r\n0\r\nX-Trailer: yes\r\n\r\n";
        for split in 0..=wire.len() {
            let (a, b) = wire.split_at(split);
            assert_eq!(
                read(Framing::Chunked, 100, &[a, b]),
                Ok((true, 6)),
                "split at {split}"
            );
        }
        let mut body = Body::new(Framing::Chunked, 100, true);
        assert_eq!(body.feed(b"3\nabc\n0\n\n"), Ok(true), "bare LFs");
        let (length, digest) = body.finish();
        assert_eq!(length, 3);
        assert_eq!(
            digest.map(|d| hex::encode(d.as_ref())),
            Some(hex::encode(
                ring::digest::digest(&ring::digest::SHA256, b"abc").as_ref()
            ))
        );
    }

    #[test]
    fn malformed_chunks_are_invalid_and_a_cut_body_is_incomplete() {
        let malformed: [&[u8]; 5] = [
            b"x\r\n",
            b"\r\n",
            b"3\r\nabcX",
            b"11111111111111111\r\n",
            b"3\rX",
        ];
        for wire in malformed {
            let outcome = read(Framing::Chunked, 1 << 20, &[wire]).err();
            assert_eq!(
                outcome.map(|o| o.result),
                Some(CheckResult::InvalidResponse),
                "{}",
                String::from_utf8_lossy(wire)
            );
        }
        let mut cut = Body::new(Framing::Chunked, 100, false);
        assert_eq!(cut.feed(b"5\r\nhel"), Ok(false));
        assert_eq!(
            cut.end().map_err(|o| o.result),
            Err(CheckResult::ConnectionFailed)
        );
        let mut short = Body::new(Framing::Length(5), 100, false);
        assert_eq!(short.feed(b"hel"), Ok(false));
        assert!(short.end().is_err());
        let mut to_close = Body::new(Framing::UntilClose, 100, false);
        assert_eq!(to_close.feed(b"hel"), Ok(false));
        assert_eq!(to_close.end(), Ok(()));
    }

    #[test]
    fn a_length_ends_the_body_and_the_cap_holds_for_every_framing() {
        assert_eq!(
            read(Framing::Length(3), 10, &[b"ok", b"\nEXTRA"]),
            Ok((true, 3))
        );
        assert_eq!(read(Framing::Empty, 0, &[b"ignored"]), Ok((true, 0)));
        let too_large =
            |framing, parts: &[&[u8]]| read(framing, 4, parts).err().map(|o| (o.result, o.detail));
        let want = Some((
            CheckResult::BodyTooLarge,
            "body longer than 4 bytes".to_owned(),
        ));
        assert_eq!(
            too_large(Framing::Length(5), &[b""]),
            want,
            "declared too long"
        );
        assert_eq!(too_large(Framing::UntilClose, &[b"abc", b"de"]), want);
        assert_eq!(
            too_large(Framing::Chunked, &[b"3\r\nabc\r\n3\r\ndef\r\n"]),
            want
        );
        assert_eq!(
            read(Framing::UntilClose, 4, &[b"abcd"]),
            Ok((false, 4)),
            "at the cap"
        );
    }
}
