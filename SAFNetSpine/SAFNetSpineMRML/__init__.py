"""MRML side of the SAFNetSpine module: nodes in, nodes out, no Qt.

* :mod:`.volume_nodes`: volume nodes <-> :class:`SAFNetSpineLib.volume.Volume` and files,
  with the IJK-to-RAS geometry kept exactly.
* :mod:`.segmentation_nodes`: label maps -> segmentation nodes (names, colours, SNOMED
  terminology from the label table; a new node or the segments of a chosen one) and
  back to label-table ids for the case store.
* :mod:`.segment_runs` / :mod:`.measure_runs`: one ``segment`` / ``measure`` child run from
  the scene's side (write the inputs, read the results back).
* :mod:`.renaming`: Rename levels from one point and one name, by the library's counting.
* :mod:`.measurement_nodes`: measurements as a table node, height lines and a lordosis angle.
* :mod:`.self_check`: the fast, install-free round trip the in-Slicer self-test runs.

Every function takes the MRML scene or nodes it works on as arguments (no global
``slicer.mrmlScene``, no ``slicer.app``), so the tests run with PyPI's ``slicer-core``.
Child processes and command lines live in the sibling package ``SAFNetSpineJobs``.
"""
