"""Slicer-side logic of the SAFNetSpine module that needs no Qt.

* :mod:`.volume_nodes`: volume nodes <-> :class:`SAFNetSpineLib.volume.Volume` and files,
  with the IJK-to-RAS geometry kept exactly.
* :mod:`.segmentation_nodes`: label maps -> segmentation nodes (names, colours, SNOMED
  terminology from the label table) and back to label-table ids for the case store.
* :mod:`.jobs`: the child process that runs ``python -m SAFNetSpineLib ...``, its JSON
  progress lines, and cancelling its whole process tree.
* :mod:`.commands`: command lines of the library's CLI and reading what it writes.

Every function takes the MRML scene or nodes it works on as arguments (no global
``slicer.mrmlScene``, no ``slicer.app``), so the tests run with PyPI's ``slicer-core``.
"""
