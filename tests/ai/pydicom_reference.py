"""The independent reference decoder for the DICOM tests: pydicom.

    pydicom_reference.py FILE FRAME STAGE OUT

STAGE is `stored` (the decoded values, no colour conversion), `modality`
(after the modality LUT: rescale slope and intercept) or `rgb` (colour converted
to RGB, as a viewer shows it). Writes the frame's values
as float64 little-endian to OUT, row by row, pixel by pixel, sample by sample,
and prints {"rows": …, "columns": …, "samples": …}.
"""
import json
import sys

import numpy as np
import pydicom
from pydicom.pixels import apply_modality_lut, pixel_array


def main() -> None:
    path, frame, stage, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    ds = pydicom.dcmread(path)
    values = pixel_array(ds, index=frame, raw=stage != "rgb")
    if stage == "modality":
        values = apply_modality_lut(values, ds)
    values.astype("<f8").tofile(out)
    print(json.dumps({"rows": int(ds.Rows), "columns": int(ds.Columns), "samples": int(ds.SamplesPerPixel)}))


if __name__ == "__main__":
    main()
