"""SAFNetSpineLib: level-by-level spine MRI segmentation with SAFNet.

Pure Python (torch, numpy, SimpleITK, MONAI); never imports slicer, qt or vtk, so it
runs in a shell, a notebook, a cluster job or as the child process of the Slicer module.
"""

__version__ = "0.1.0"
