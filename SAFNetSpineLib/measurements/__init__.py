"""Spine measurements from a label map: body and disc heights, lordosis, slips, fracture grade.

* :mod:`.definitions`: what each measurement means, with its literature reference.
* :mod:`.section`, :mod:`.outline`, :mod:`.bodies`: the geometry, in the patient frame.
* :mod:`.survey`: what is present in the label map, and the spine frame.
* :mod:`.angles`: segmental angles, slips and lordosis between measured endplates.
* :mod:`.spine`: :func:`measure_spine`, the whole label map -> the measurements document.
* :mod:`.report`: the JSON and CSV files, the table rows and the one-line summary.
* :mod:`.figure`: the mid-sagittal PNG.
"""

from SAFNetSpineLib.measurements.report import (
    measure_and_write,
    measure_label_file,
    measurement_rows,
    summary_line,
    write_measurements,
)
from SAFNetSpineLib.measurements.spine import measure_spine

__all__ = ["measure_and_write", "measure_label_file", "measure_spine", "measurement_rows", "summary_line", "write_measurements"]
