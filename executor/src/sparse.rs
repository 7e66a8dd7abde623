//! Where a file's data is: `lseek` with `SEEK_DATA`/`SEEK_HOLE` (through
//! `libc`; std does not expose them). Shared by the raw backend's copies
//! and the image store's checksum, so neither reads holes.

use std::fs::File;
use std::io;
use std::os::unix::io::AsRawFd;

/// The data extents of `file` below `end`, in order, as half-open
/// `(start, end)` ranges. On a file system that does not report holes,
/// `SEEK_DATA` treats the whole file as data: one extent, still correct.
pub fn data_extents(file: &File, end: u64) -> io::Result<Vec<(u64, u64)>> {
    let fd = file.as_raw_fd();
    // The next offset >= `off` of kind `whence`, or None (ENXIO: none).
    let seek = |off: u64, whence: libc::c_int| -> io::Result<Option<u64>> {
        // SAFETY: lseek on a descriptor the caller owns; no memory involved.
        // The file offset it moves is not used (callers read positionally).
        let r = unsafe { libc::lseek(fd, off as libc::off_t, whence) };
        if r < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ENXIO) => Ok(None),
                _ => Err(e),
            };
        }
        Ok(Some(r as u64))
    };
    let mut out = Vec::new();
    let mut off = 0u64;
    while off < end {
        let Some(data) = seek(off, libc::SEEK_DATA)? else {
            break;
        };
        if data >= end {
            break;
        }
        let hole = seek(data, libc::SEEK_HOLE)?.unwrap_or(end).min(end);
        out.push((data, hole));
        off = hole;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn finds_the_written_ranges_of_a_sparse_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = File::create(dir.path().join("s")).unwrap();
        f.set_len(64 << 20).unwrap();
        f.write_all_at(&[1u8; 4096], 8 << 20).unwrap();
        f.sync_all().unwrap();
        let ext = data_extents(&f, 64 << 20).unwrap();
        let total: u64 = ext.iter().map(|(s, e)| e - s).sum();
        assert!(
            ext.iter()
                .any(|(s, e)| *s <= 8 << 20 && *e >= (8 << 20) + 4096),
            "{ext:?}"
        );
        assert!(total < 64 << 20, "holes are not data: {ext:?}");
        assert!(data_extents(&f, 0).unwrap().is_empty());
    }
}
