//! JPEG folder replay: plays the `*.jpg`/`*.jpeg` files of a folder, in name order and in a
//! loop, at the configured rate. It behaves like an MJPEG camera, so it exercises the
//! passthrough path: files are handed on byte for byte (after the encoder's check).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{FrameSource, Mode, SourceError};
use crate::frame::{CapturedFrame, Pixels, monotonic_us};
use crate::pacing::Ticker;

/// Files larger than this are not camera frames; they are refused rather than read.
const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

pub struct JpegFolder {
    dir: PathBuf,
    files: Vec<PathBuf>,
    next_index: usize,
    buffer: Vec<u8>,
    width: u32,
    height: u32,
    fps: u32,
    ticker: Ticker,
}

impl JpegFolder {
    /// Lists the folder's JPEG files. The mode's size is the first file's.
    pub fn open(dir: &Path, fps: u32) -> Result<JpegFolder, SourceError> {
        let files = list_jpegs(dir)?;
        let first = read_frame_file(&files[0])?;
        let (width, height) = match crate::jpeg::check(&first) {
            Ok(info) => (info.width, info.height),
            Err(e) => {
                return Err(SourceError::Failed(format!(
                    "{}: not a usable JPEG: {e}",
                    files[0].display()
                )));
            }
        };
        Ok(JpegFolder {
            dir: dir.to_owned(),
            files,
            next_index: 0,
            buffer: first,
            width,
            height,
            fps,
            ticker: Ticker::new(fps),
        })
    }
}

fn list_jpegs(dir: &Path) -> Result<Vec<PathBuf>, SourceError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| SourceError::Failed(format!("cannot read folder {}: {e}", dir.display())))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e.eq_ignore_ascii_case("jpg") || e.eq_ignore_ascii_case("jpeg"))
        })
        .collect();
    if files.is_empty() {
        return Err(SourceError::Failed(format!(
            "folder {} has no .jpg files",
            dir.display()
        )));
    }
    files.sort();
    Ok(files)
}

fn read_frame_file(path: &Path) -> Result<Vec<u8>, SourceError> {
    let mut buffer = Vec::new();
    read_frame_file_into(path, &mut buffer)?;
    Ok(buffer)
}

fn read_frame_file_into(path: &Path, buffer: &mut Vec<u8>) -> Result<(), SourceError> {
    use std::io::Read;
    let file = std::fs::File::open(path)
        .map_err(|e| SourceError::Failed(format!("cannot open {}: {e}", path.display())))?;
    buffer.clear();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(buffer)
        .map_err(|e| SourceError::Failed(format!("cannot read {}: {e}", path.display())))?;
    if buffer.len() as u64 > MAX_FILE_BYTES {
        return Err(SourceError::Failed(format!(
            "{} is larger than {} MiB",
            path.display(),
            MAX_FILE_BYTES >> 20
        )));
    }
    Ok(())
}

impl FrameSource for JpegFolder {
    fn description(&self) -> String {
        format!(
            "JPEG folder {} ({} files)",
            self.dir.display(),
            self.files.len()
        )
    }

    fn mode(&self) -> Mode {
        Mode {
            width: self.width,
            height: self.height,
            format: "MJPEG",
            fps: self.fps,
        }
    }

    fn next_frame(&mut self, timeout: Duration) -> Result<CapturedFrame<'_>, SourceError> {
        if !self.ticker.wait(timeout) {
            return Err(SourceError::Timeout);
        }
        let path = &self.files[self.next_index];
        self.next_index = (self.next_index + 1) % self.files.len();
        // A file that vanished or cannot be read is handed on empty: the encoder's
        // check refuses it and counts it, and the next file follows.
        if let Err(e) = read_frame_file_into(path, &mut self.buffer) {
            log::debug!("{e}");
            self.buffer.clear();
        }
        Ok(CapturedFrame {
            pixels: Pixels::Jpeg(&self.buffer),
            width: self.width,
            height: self.height,
            captured_us: monotonic_us(),
            dropped_before: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mjpeg_client::test_jpeg::{Subsamp, rgb_jpeg};

    fn tiny_jpeg(shade: u8) -> Vec<u8> {
        rgb_jpeg(&vec![shade; 16 * 8 * 3], 16, 8, 90, Subsamp::Gray)
    }

    #[test]
    fn plays_files_in_name_order_and_loops() {
        let dir = std::env::temp_dir().join(format!("frcstream-folder-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let files = [tiny_jpeg(10), tiny_jpeg(200)];
        std::fs::write(dir.join("b.jpg"), &files[1]).expect("write");
        std::fs::write(dir.join("a.JPG"), &files[0]).expect("write");
        std::fs::write(dir.join("notes.txt"), b"not a frame").expect("write");
        let mut folder = JpegFolder::open(&dir, 1000).expect("open");
        assert_eq!(folder.mode().width, 16);
        for expected in [&files[0], &files[1], &files[0]] {
            let frame = folder.next_frame(Duration::from_secs(1)).expect("frame");
            assert_eq!(frame.pixels.data(), expected.as_slice());
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn an_empty_or_missing_folder_is_a_clear_error() {
        let missing = Path::new("/nonexistent/frcstream");
        let err = JpegFolder::open(missing, 30).err().expect("error");
        assert!(err.to_string().contains("cannot read folder"), "{err}");
        let empty = std::env::temp_dir().join(format!("frcstream-empty-{}", std::process::id()));
        std::fs::create_dir_all(&empty).expect("temp dir");
        let err = JpegFolder::open(&empty, 30).err().expect("error");
        assert!(err.to_string().contains("no .jpg files"), "{err}");
        std::fs::remove_dir_all(&empty).ok();
    }
}
