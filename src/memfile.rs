//! Bytes in an anonymous in-memory file (`memfd`), sent to sockets with `sendfile(2)`.
//!
//! `writev` copies what it sends into memory the kernel allocates for each socket: with 20
//! clients, every frame is copied 20 times (and on kernels that zero what they allocate,
//! Debian's among them, that memory is zeroed first). `sendfile` from a file hands the
//! socket references to the file's pages instead: no copy per client. The file is written
//! once and never changed; pages still referenced by a socket outlive the file itself.

use std::ffi::CStr;
use std::fs::File;
use std::io::{self, IoSlice, Write};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};

#[derive(Debug)]
pub struct MemFile {
    file: File,
    len: usize,
}

impl MemFile {
    /// A new file holding `chunks` one after the other.
    pub fn new(name: &CStr, chunks: &[&[u8]]) -> io::Result<MemFile> {
        // SAFETY: memfd_create reads the NUL-terminated name and returns a new descriptor.
        let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created and nothing else owns it.
        let mut file = unsafe { File::from_raw_fd(fd) };
        let mut slices: Vec<IoSlice<'_>> = chunks.iter().map(|c| IoSlice::new(c)).collect();
        let mut slices = slices.as_mut_slice();
        let len = chunks.iter().map(|c| c.len()).sum();
        while !slices.is_empty() {
            match file.write_vectored(slices) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => IoSlice::advance_slices(&mut slices, n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(MemFile { file, len })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sends the bytes from `offset` on to `socket` with one `sendfile`: returns how many
    /// went (fewer when the socket's buffer filled up, or its send timeout passed).
    pub fn send(&self, socket: RawFd, offset: usize) -> io::Result<usize> {
        let mut from = offset as libc::off_t;
        // SAFETY: both descriptors are open for the duration of the call; the kernel
        // writes only `from`, which we own.
        let sent = unsafe {
            libc::sendfile(
                socket,
                self.file.as_raw_fd(),
                &mut from,
                self.len.saturating_sub(offset),
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(sent as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn a_memfile_sends_its_chunks_in_order_from_any_offset() {
        let file = MemFile::new(c"test", &[b"head ", &[7u8; 100_000], b" tail"]).expect("memfd");
        assert_eq!(file.len(), 100_010);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let sender = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (mut receiver, _) = listener.accept().expect("accept");
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            receiver.read_to_end(&mut got).map(|_| got)
        });
        let mut offset = 0;
        while offset < file.len() {
            offset += file.send(sender.as_raw_fd(), offset).expect("sendfile");
        }
        // Again, from the middle of the tail.
        let again = file
            .send(sender.as_raw_fd(), file.len() - 3)
            .expect("sendfile");
        assert_eq!(again, 3);
        drop(sender);
        let got = reader.join().expect("reader").expect("read");
        assert_eq!(got.len(), 100_013);
        assert!(got.starts_with(b"head \x07"));
        assert!(got.ends_with(b"\x07 tailail"));
    }
}
