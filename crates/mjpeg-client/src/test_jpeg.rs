//! JPEGs for tests: the one place the tests (integration and unit) and the benchmarks turn
//! an image of their own making into a JPEG, with libjpeg-turbo for real.

pub use turbojpeg::Subsamp;

/// `pixels` (RGB, 3 bytes a pixel, rows of `width` without padding) as a JPEG at `quality`
/// (1–100) with chroma `subsampling`. Panics when the image is not `width` x `height` RGB:
/// test images are the test's own making.
pub fn rgb_jpeg(
    pixels: &[u8],
    width: usize,
    height: usize,
    quality: i32,
    subsampling: Subsamp,
) -> Vec<u8> {
    assert_eq!(
        pixels.len(),
        width * height * 3,
        "a {width}x{height} RGB image is {} bytes",
        width * height * 3
    );
    let image = turbojpeg::Image {
        pixels,
        width,
        pitch: width * 3,
        height,
        format: turbojpeg::PixelFormat::RGB,
    };
    turbojpeg::compress(image, quality, subsampling)
        .unwrap_or_else(|e| panic!("libjpeg-turbo cannot compress a {width}x{height} image: {e}"))
        .to_vec()
}

/// A `width` x `height` JPEG of one flat `shade` of gray (4:2:0, quality 80).
pub fn flat_jpeg(width: usize, height: usize, shade: u8) -> Vec<u8> {
    rgb_jpeg(
        &vec![shade; width * height * 3],
        width,
        height,
        80,
        Subsamp::Sub2x2,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_jpeg_decodes_to_the_size_and_shade_it_was_made_from() {
        let jpeg = flat_jpeg(64, 48, 200);
        assert!(jpeg.starts_with(&[0xFF, 0xD8]) && jpeg.ends_with(&[0xFF, 0xD9]));
        let image = turbojpeg::decompress(&jpeg, turbojpeg::PixelFormat::GRAY).expect("decodes");
        assert_eq!((image.width, image.height), (64, 48));
        assert!(image.pixels.iter().all(|&p| p.abs_diff(200) <= 2));
    }

    #[test]
    #[should_panic(expected = "a 4x4 RGB image is 48 bytes")]
    fn a_buffer_of_the_wrong_size_is_refused() {
        rgb_jpeg(&[0; 47], 4, 4, 80, Subsamp::Sub2x2);
    }
}
