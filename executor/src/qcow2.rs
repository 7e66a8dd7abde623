//! Empty qcow2 images written directly, and the two header fields the
//! backend needs read directly, so that creating a volume, taking a
//! snapshot, rolling back or making a linked clone spawns no process
//! (issue 11): an empty image is a few kilobytes of metadata, and spawning
//! `qemu-img create` for it costs several times more than writing them.
//! Everything that touches data (resize, convert, check, commit) stays with
//! `qemu-img`.
//!
//! The layout is the one `qemu-img create -f qcow2 [-F qcow2 -b B] F SIZE`
//! (QEMU 10) writes, field for field, following the format specification
//! (qemu `docs/interop/qcow2.txt`):
//!
//! ```text
//! cluster 0   header (version 3, 112 bytes), header extensions (backing
//!             format "qcow2" if there is a backing file, the feature name
//!             table, the end marker), then the backing file name
//! cluster 1   refcount table: one entry, pointing at cluster 2
//! cluster 2   refcount block: 16-bit refcounts, 1 for every metadata cluster
//! cluster 3…  L1 table, all zeros (no L2 table allocated); the file ends
//!             where the table ends
//! ```
//!
//! 64 KiB clusters, refcount order 4 (16-bit refcounts), compat 1.1 (version
//! 3), no lazy refcounts, zlib compression type, no encryption. The virtual
//! size is rounded up to a multiple of 512 bytes, as qemu does.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// 64 KiB clusters (qemu's default).
pub const CLUSTER_BITS: u32 = 16;
pub const CLUSTER_SIZE: u64 = 1 << CLUSTER_BITS;
/// 16-bit refcounts (qemu's default).
const REFCOUNT_ORDER: u32 = 4;
/// qemu refuses to open an image whose L1 table is larger (QCOW_MAX_L1_SIZE).
const MAX_L1_BYTES: u64 = 32 << 20;
/// The longest backing file name the format allows.
const MAX_BACKING_NAME: usize = 1023;
/// With 64 KiB clusters one L2 table maps 8,192 clusters = 512 MiB.
const BYTES_PER_L1_ENTRY: u64 = CLUSTER_SIZE * (CLUSTER_SIZE / 8);
/// The largest virtual size qemu accepts with 64 KiB clusters: 2 PiB.
pub const MAX_VIRTUAL_SIZE: u64 = MAX_L1_BYTES / 8 * BYTES_PER_L1_ENTRY;

const MAGIC: &[u8; 4] = b"QFI\xfb";
/// Version 3 header with the compression type byte, padded to 8.
const HEADER_LENGTH: u32 = 112;
const EXT_BACKING_FORMAT: u32 = 0xe279_2aca;
const EXT_FEATURE_TABLE: u32 = 0x6803_f857;
/// The feature name table qemu writes into every image it creates: (type,
/// bit, name); type 0 incompatible, 1 compatible, 2 autoclear. It only names
/// bits for tools that do not know them; none of the bits is set.
const FEATURE_NAMES: [(u8, u8, &str); 8] = [
    (0, 0, "dirty bit"),
    (0, 1, "corrupt bit"),
    (0, 2, "external data file"),
    (0, 3, "compression type"),
    (0, 4, "extended L2 entries"),
    (1, 0, "lazy refcounts"),
    (2, 0, "bitmaps"),
    (2, 1, "raw external data"),
];
const FEATURE_NAME_LEN: usize = 46;

#[derive(Debug, thiserror::Error)]
pub enum Qcow2Error {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("not a qcow2 image: {0}")]
    NotQcow2(String),
    #[error("virtual size {0} is larger than qcow2 with 64 KiB clusters allows (2 PiB)")]
    TooLarge(u64),
    #[error("backing file name of {0} bytes does not fit the header (at most 1023)")]
    BackingName(usize),
}

/// What the backend needs of an image's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub virtual_size: u64,
    /// The backing file name exactly as stored (relative names are relative
    /// to the image's directory), or None for a standalone image.
    pub backing_file: Option<String>,
}

/// The metadata of an empty image, and where each piece goes.
struct Layout {
    virtual_size: u64,
    l1_entries: u64,
    /// Cluster 0, up to the end of the backing file name.
    header: Vec<u8>,
}

impl Layout {
    fn new(size: u64, backing: Option<&str>) -> Result<Layout, Qcow2Error> {
        if size > MAX_VIRTUAL_SIZE {
            return Err(Qcow2Error::TooLarge(size));
        }
        let virtual_size = size.div_ceil(512) * 512;
        let l1_entries = virtual_size.div_ceil(BYTES_PER_L1_ENTRY);
        if let Some(b) = backing {
            if b.len() > MAX_BACKING_NAME {
                return Err(Qcow2Error::BackingName(b.len()));
            }
        }
        let mut layout = Layout {
            virtual_size,
            l1_entries,
            header: Vec::with_capacity(2048),
        };
        layout.write_header(backing);
        Ok(layout)
    }

    fn l1_offset(&self) -> u64 {
        // An image of size 0 has no L1 table at all (offset 0), as qemu's.
        if self.l1_entries == 0 {
            0
        } else {
            3 * CLUSTER_SIZE
        }
    }

    fn l1_clusters(&self) -> u64 {
        (self.l1_entries * 8).div_ceil(CLUSTER_SIZE)
    }

    /// Header, refcount table, refcount block, L1 table.
    fn metadata_clusters(&self) -> u64 {
        3 + self.l1_clusters()
    }

    /// The file ends where the L1 table ends (qemu writes no padding).
    fn file_len(&self) -> u64 {
        3 * CLUSTER_SIZE + self.l1_entries * 8
    }

    fn write_header(&mut self, backing: Option<&str>) {
        let l1_offset = self.l1_offset();
        let h = &mut self.header;
        h.extend_from_slice(MAGIC); // 0: magic
        h.extend_from_slice(&3u32.to_be_bytes()); // 4: version
        h.extend_from_slice(&0u64.to_be_bytes()); // 8: backing_file_offset (patched below)
        h.extend_from_slice(&0u32.to_be_bytes()); // 16: backing_file_size (patched below)
        h.extend_from_slice(&CLUSTER_BITS.to_be_bytes()); // 20: cluster_bits
        h.extend_from_slice(&self.virtual_size.to_be_bytes()); // 24: size
        h.extend_from_slice(&0u32.to_be_bytes()); // 32: crypt_method
        h.extend_from_slice(&(self.l1_entries as u32).to_be_bytes()); // 36: l1_size
        h.extend_from_slice(&l1_offset.to_be_bytes()); // 40: l1_table_offset
        h.extend_from_slice(&CLUSTER_SIZE.to_be_bytes()); // 48: refcount_table_offset
        h.extend_from_slice(&1u32.to_be_bytes()); // 56: refcount_table_clusters
        h.extend_from_slice(&0u32.to_be_bytes()); // 60: nb_snapshots
        h.extend_from_slice(&0u64.to_be_bytes()); // 64: snapshots_offset
        h.extend_from_slice(&0u64.to_be_bytes()); // 72: incompatible_features
        h.extend_from_slice(&0u64.to_be_bytes()); // 80: compatible_features (no lazy refcounts)
        h.extend_from_slice(&0u64.to_be_bytes()); // 88: autoclear_features
        h.extend_from_slice(&REFCOUNT_ORDER.to_be_bytes()); // 96: refcount_order
        h.extend_from_slice(&HEADER_LENGTH.to_be_bytes()); // 100: header_length
        h.push(0); // 104: compression_type zlib
        h.resize(HEADER_LENGTH as usize, 0); // padding to a multiple of 8
        if backing.is_some() {
            push_extension(h, EXT_BACKING_FORMAT, b"qcow2");
        }
        let mut table = Vec::with_capacity(FEATURE_NAMES.len() * (2 + FEATURE_NAME_LEN));
        for (kind, bit, name) in FEATURE_NAMES {
            table.push(kind);
            table.push(bit);
            let mut field = [0u8; FEATURE_NAME_LEN];
            field[..name.len()].copy_from_slice(name.as_bytes());
            table.extend_from_slice(&field);
        }
        push_extension(h, EXT_FEATURE_TABLE, &table);
        h.extend_from_slice(&[0u8; 8]); // end of the header extension area
        if let Some(name) = backing {
            // The name sits right after the extensions, inside cluster 0.
            let offset = h.len() as u64;
            h[8..16].copy_from_slice(&offset.to_be_bytes());
            h[16..20].copy_from_slice(&(name.len() as u32).to_be_bytes());
            h.extend_from_slice(name.as_bytes());
        }
        debug_assert!(h.len() as u64 <= CLUSTER_SIZE);
    }
}

/// A header extension: type, data length, data padded to a multiple of 8.
fn push_extension(h: &mut Vec<u8>, kind: u32, data: &[u8]) {
    h.extend_from_slice(&kind.to_be_bytes());
    h.extend_from_slice(&(data.len() as u32).to_be_bytes());
    h.extend_from_slice(data);
    h.resize(h.len().next_multiple_of(8), 0);
}

/// Writes an empty image of `size` bytes (rounded up to 512) into `file`,
/// which must be empty; with `backing`, an overlay of that file name
/// (stored as given, so a relative name is relative to the image's
/// directory) whose backing format is qcow2. Does not flush: see `create`.
/// The backing file is not opened (qemu-img opens it to check it exists;
/// the caller checks).
pub fn write_empty(file: &File, size: u64, backing: Option<&str>) -> Result<(), Qcow2Error> {
    let layout = Layout::new(size, backing)?;
    file.write_all_at(&layout.header, 0)?;
    // Refcount table, one entry: the refcount block is cluster 2.
    file.write_all_at(&(2 * CLUSTER_SIZE).to_be_bytes(), CLUSTER_SIZE)?;
    // Refcount block: every metadata cluster is used once. One block holds
    // 32,768 entries; the largest image has 3 + 512 metadata clusters.
    let n = layout.metadata_clusters() as usize;
    let block: Vec<u8> = std::iter::repeat_n(1u16.to_be_bytes(), n)
        .flatten()
        .collect();
    file.write_all_at(&block, 2 * CLUSTER_SIZE)?;
    // The L1 table is all zeros: extending the file makes it a hole.
    file.set_len(layout.file_len())?;
    Ok(())
}

/// Creates (or truncates) `path` and writes an empty image into it as
/// `write_empty` does, then flushes it to disk, so that a rename of `path`
/// into place can never become durable before its content.
pub fn create(path: &Path, size: u64, backing: Option<&str>) -> Result<(), Qcow2Error> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    write_empty(&file, size, backing)?;
    file.sync_all()?;
    Ok(())
}

/// Reads the virtual size and backing file name of the qcow2 image at
/// `path` (version 2 or 3). Two positional reads; the backing chain is not
/// opened, and no lock is taken, so it works on an image a consumer holds
/// open and on an overlay whose backing is gone.
pub fn read_header(path: &Path) -> Result<Header, Qcow2Error> {
    let file = File::open(path)?;
    read_header_of(&file)
}

/// `read_header` of an open file.
pub fn read_header_of(file: &File) -> Result<Header, Qcow2Error> {
    // Every field needed is in the first 72 bytes (the version 2 header).
    let mut h = [0u8; 72];
    file.read_exact_at(&mut h, 0).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            Qcow2Error::NotQcow2("shorter than a qcow2 header".into())
        } else {
            Qcow2Error::Io(e)
        }
    })?;
    let be32 = |at: usize| u32::from_be_bytes(h[at..at + 4].try_into().expect("4 bytes"));
    let be64 = |at: usize| u64::from_be_bytes(h[at..at + 8].try_into().expect("8 bytes"));
    if &h[0..4] != MAGIC {
        return Err(Qcow2Error::NotQcow2("bad magic".into()));
    }
    let version = be32(4);
    if version != 2 && version != 3 {
        return Err(Qcow2Error::NotQcow2(format!("version {version}")));
    }
    let backing_offset = be64(8);
    let backing_len = be32(16) as usize;
    let virtual_size = be64(24);
    let backing_file = if backing_offset == 0 {
        None
    } else {
        if backing_len > MAX_BACKING_NAME {
            return Err(Qcow2Error::BackingName(backing_len));
        }
        let mut name = vec![0u8; backing_len];
        file.read_exact_at(&mut name, backing_offset)?;
        Some(
            String::from_utf8(name)
                .map_err(|_| Qcow2Error::NotQcow2("backing file name is not UTF-8".into()))?,
        )
    };
    Ok(Header {
        virtual_size,
        backing_file,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_up_to_512_and_l1_covers_them() {
        let l = Layout::new(1, None).unwrap();
        assert_eq!((l.virtual_size, l.l1_entries), (512, 1));
        let l = Layout::new(0, None).unwrap();
        assert_eq!((l.virtual_size, l.l1_entries, l.l1_offset()), (0, 0, 0));
        assert_eq!(l.file_len(), 3 * CLUSTER_SIZE);
        let l = Layout::new(512 << 20, None).unwrap();
        assert_eq!(l.l1_entries, 1);
        let l = Layout::new((512 << 20) + 1, None).unwrap();
        assert_eq!(l.l1_entries, 2);
        let l = Layout::new(16 << 40, None).unwrap();
        assert_eq!((l.l1_entries, l.l1_clusters()), (32768, 4));
        assert_eq!(MAX_VIRTUAL_SIZE, 2 << 50);
        assert!(Layout::new(MAX_VIRTUAL_SIZE, None).is_ok());
        assert!(matches!(
            Layout::new(MAX_VIRTUAL_SIZE + 1, None),
            Err(Qcow2Error::TooLarge(_))
        ));
        assert!(Layout::new(u64::MAX, None).is_err());
    }

    #[test]
    fn the_backing_name_follows_the_extensions() {
        let l = Layout::new(1 << 30, Some("../snapshots/abc")).unwrap();
        // header 112 + backing format ext 16 + feature table 8+384 + end 8
        assert_eq!(l.header.len(), 0x210 + 16);
        assert_eq!(&l.header[0x210..], b"../snapshots/abc");
        assert!(Layout::new(1, Some(&"x".repeat(1024))).is_err());
    }

    #[test]
    fn what_is_written_reads_back() {
        let tmp = tempfile::tempdir().unwrap();
        for (size, backing) in [(0, None), (1 << 30, Some("../snapshots/x")), (7, None)] {
            let p = tmp.path().join("img");
            create(&p, size, backing).unwrap();
            let h = read_header(&p).unwrap();
            assert_eq!(h.virtual_size, size.div_ceil(512) * 512);
            assert_eq!(h.backing_file.as_deref(), backing);
        }
        let p = tmp.path().join("raw");
        std::fs::write(&p, vec![0u8; 4096]).unwrap();
        assert!(matches!(read_header(&p), Err(Qcow2Error::NotQcow2(_))));
        std::fs::write(&p, b"QFI").unwrap();
        assert!(matches!(read_header(&p), Err(Qcow2Error::NotQcow2(_))));
    }
}
