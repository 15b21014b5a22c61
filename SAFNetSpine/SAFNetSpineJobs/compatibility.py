"""The oldest Slicer the module runs on, and the message shown on an older one.

Slicer 5.10 is the first release with both things the module needs: Python 3.11 or
newer (the library uses ``datetime.UTC``, ``zip(strict=)``, ``tomllib``) and
``vtkMRMLColorNode.SetTerminology`` (the colour table carries each level's SNOMED code).

This file is imported before anything else of the module and must parse and run on the
Python of older Slicers (3.9 in Slicer 5.8): no 3.10+ syntax here.
"""

#: (major, minor) of the oldest supported Slicer; also in CMakeLists.txt and the README.
MINIMUM_SLICER = (5, 10)
#: (major, minor) of the oldest Python the library runs on.
MINIMUM_PYTHON = (3, 11)


def slicer_problem(slicer_version, python_version, color_node_class=None):
    """None when this Slicer can run the module, else one sentence saying what to do.

    Args:
        slicer_version: (major, minor) of the running Slicer.
        python_version: ``sys.version_info`` (or a (major, minor) tuple).
        color_node_class: ``slicer.vtkMRMLColorNode``, checked for ``SetTerminology``
            (None skips that check).
    """
    wanted = "{}.{}".format(*MINIMUM_SLICER)
    running = "{}.{}".format(*tuple(slicer_version)[:2])
    if tuple(slicer_version)[:2] < MINIMUM_SLICER:
        return (f"SAFNet Spine needs 3D Slicer {wanted} or later; this is Slicer {running}. Install a current Slicer "
                "from download.slicer.org and the extension again.")
    if tuple(python_version)[:2] < MINIMUM_PYTHON:
        return ("SAFNet Spine needs Python {}.{} or later inside Slicer; this Slicer has Python {}.{}. "
                "Install 3D Slicer {} or later.").format(*MINIMUM_PYTHON, *tuple(python_version)[:2], wanted)
    if color_node_class is not None and not hasattr(color_node_class, "SetTerminology"):
        return ("SAFNet Spine needs colour tables with terminology (vtkMRMLColorNode.SetTerminology), "
                f"which this Slicer {running} lacks. Install 3D Slicer {wanted} or later.")
    return None
