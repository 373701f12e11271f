//! The non-identifying header fields of a DICOM upload, read from the first
//! bytes of the plaintext as they stream past (the header precedes the pixel
//! data). Anything unreadable is simply not DICOM metadata: the file is kept as
//! an opaque blob, never refused, never a panic.

use dicom_dictionary_std::tags;
use dicom_object::OpenFileOptions;
use emr_domain::ids::AttachmentId;
use emr_domain::values::DicomSummary;

/// How much of the plaintext is kept for the header.
pub(crate) const HEADER_BYTES: usize = 1024 * 1024;

/// Reads the summary from `prefix`, the first bytes of a DICOM file (with or
/// without its 128-byte preamble); `Err` says why it could not.
pub fn summarize(prefix: &[u8]) -> Result<DicomSummary, String> {
    let body = if prefix.len() >= 132 && &prefix[128..132] == b"DICM" { &prefix[128..] } else { prefix };
    // A third-party parser on untrusted bytes: should it ever panic, the upload
    // must still succeed as an opaque blob.
    let object = std::panic::catch_unwind(|| OpenFileOptions::new().read_until(tags::PIXEL_DATA).from_reader(body))
        .map_err(|_| "the DICOM parser failed".to_owned())?
        .map_err(|e| e.to_string())?;
    let text = |tag| {
        object.element(tag).ok().and_then(|e| e.to_str().ok()).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty() && v.len() <= 64)
    };
    let number = |tag| object.element(tag).ok().and_then(|e| e.to_int::<u32>().ok());
    let study_date = text(tags::STUDY_DATE).and_then(|d| chrono::NaiveDate::parse_from_str(&d, "%Y%m%d").ok());
    Ok(DicomSummary {
        modality: text(tags::MODALITY),
        study_date,
        body_part: text(tags::BODY_PART_EXAMINED),
        rows: number(tags::ROWS),
        columns: number(tags::COLUMNS),
    })
}

/// How long reading a header may take before the upload goes on without it.
const PARSE_BUDGET: std::time::Duration = std::time::Duration::from_secs(2);

/// [`summarize`] on a blocking thread, within [`PARSE_BUDGET`]: `None` (the blob
/// is kept opaque) when the header is unreadable or takes longer. The fuzz
/// campaign (tests/tests/fuzz.rs) found crafted headers on which the parser
/// spends many seconds of CPU; an upload must not wait for that.
pub(crate) async fn summarize_within(header: Vec<u8>, attachment: AttachmentId) -> Option<DicomSummary> {
    let parsing = tokio::task::spawn_blocking(move || summarize(&header));
    let reason = match tokio::time::timeout(PARSE_BUDGET, parsing).await {
        Ok(Ok(Ok(summary))) => return Some(summary),
        Ok(Ok(Err(reason))) => reason,
        Ok(Err(_)) => "the DICOM parser failed".to_owned(),
        Err(_) => format!("reading the header took longer than {PARSE_BUDGET:?}"),
    };
    tracing::warn!(%attachment, %reason, "DICOM header unreadable; stored as an opaque blob");
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn ct_small() -> Vec<u8> {
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/dicom/CT_small.dcm")).unwrap()
    }

    #[test]
    fn a_ct_slice_yields_modality_study_date_and_size() {
        let summary = summarize(&ct_small()).unwrap();
        assert_eq!(summary.modality.as_deref(), Some("CT"));
        assert_eq!(summary.study_date, chrono::NaiveDate::from_ymd_opt(2004, 1, 19));
        assert_eq!((summary.rows, summary.columns), (Some(128), Some(128)));
        assert_eq!(summary.body_part, None, "this file names no body part");
    }

    #[test]
    fn malformed_or_truncated_files_are_errors_not_panics() {
        let file = ct_small();
        for bad in [&b""[..], b"DICM", &[0xff; 4096][..], b"%PDF-1.7 not an image"] {
            assert!(summarize(bad).is_err(), "{:?}", &bad[..bad.len().min(8)]);
        }
        // Cut inside the file meta group, or inside the data set: whatever the
        // parser makes of it, it never yields the intact file's full summary.
        let intact = summarize(&file).unwrap();
        for cut in [140, 300, 600] {
            assert_ne!(summarize(&file[..cut]).ok(), Some(intact.clone()), "cut at {cut}");
        }
        let mut garbled = file.clone();
        for byte in garbled.iter_mut().skip(132).take(400) {
            *byte = 0xff;
        }
        assert!(summarize(&garbled).is_err(), "a garbled meta group is refused");
    }
}
