"""The module's child processes and what it knows about the library's commands, without MRML or Qt.

* :mod:`.jobs`: one child process running ``python -m SAFNetSpineLib ...``, its JSON
  progress lines, and cancelling its whole process tree (gracefully through a launcher).
* :mod:`.board`: the panel's jobs by role, polled from one timer.
* :mod:`.commands`: command lines of the library's CLI and reading what it writes.
* :mod:`.model_versions`: ``models list --json`` as selector entries and table rows.
* :mod:`.work_folders`: the work folder's stores, counting and clearing them.
* :mod:`.requirements`: which Python packages are installed, in which versions, and what to ask.
* :mod:`.install`: the install flow (torch in children, pip under constraints), one at a time.
* :mod:`.choices`: the panel choices kept between sessions (all read before any is set).
* :mod:`.compatibility`: the minimum Slicer and Python (parses on old Pythons).

Everything here runs with plain Python, so the tests run without Slicer.
"""
