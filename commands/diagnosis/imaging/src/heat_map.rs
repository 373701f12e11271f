//! An explanation a clinician can look at: the image the model read, in grey,
//! under a red overlay whose strength is each region's importance.

use std::io::Cursor;

use image::{ImageFormat, Rgb, RgbImage};

use crate::ImagingError;

/// A PNG of `grey` (`width` × `height` display values) overlaid with `cells`
/// (a `grid` × `grid` importance map, row by row from the top left; only
/// positive importance is drawn, scaled to the largest).
pub fn heat_map_png(grey: &[u8], width: u32, height: u32, cells: &[f32], grid: usize) -> Result<Vec<u8>, ImagingError> {
    let pixels = width as usize * height as usize;
    if grey.len() != pixels || grid == 0 || cells.len() != grid * grid {
        return Err(ImagingError::Undecodable(format!(
            "a heat map needs {pixels} grey values and {} cells, got {} and {}",
            grid * grid,
            grey.len(),
            cells.len()
        )));
    }
    let peak = cells.iter().copied().fold(0.0f32, f32::max);
    let image = RgbImage::from_fn(width, height, |x, y| {
        let v = f32::from(grey[y as usize * width as usize + x as usize]);
        let row = (y as usize * grid / height as usize).min(grid - 1);
        let column = (x as usize * grid / width as usize).min(grid - 1);
        let weight = if peak > 0.0 { (cells[row * grid + column].max(0.0) / peak) * 0.6 } else { 0.0 };
        let blend = |base: f32, tint: f32| (base * (1.0 - weight) + tint * weight).round().clamp(0.0, 255.0) as u8;
        Rgb([blend(v, 255.0), blend(v, 0.0), blend(v, 0.0)])
    });
    let mut png = Cursor::new(Vec::new());
    image.write_to(&mut png, ImageFormat::Png).map_err(|e| ImagingError::Undecodable(e.to_string()))?;
    Ok(png.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_important_region_is_tinted_red_and_the_rest_left_grey() {
        let grey = vec![100u8; 16];
        let png = heat_map_png(&grey, 4, 4, &[1.0, 0.0, -0.5, 0.0], 2).unwrap();
        let decoded = image::load_from_memory(&png).unwrap().to_rgb8();
        let tinted = decoded.get_pixel(0, 0);
        assert!(tinted[0] > 100 && tinted[1] < 100, "{tinted:?}");
        assert_eq!(decoded.get_pixel(3, 3), &Rgb([100, 100, 100]));
        assert_eq!(decoded.get_pixel(0, 3), &Rgb([100, 100, 100]), "negative importance is not drawn");
    }

    #[test]
    fn a_map_that_does_not_fit_the_image_is_an_error() {
        assert!(heat_map_png(&[0; 15], 4, 4, &[0.0; 4], 2).is_err());
        assert!(heat_map_png(&[0; 16], 4, 4, &[0.0; 3], 2).is_err());
    }
}
