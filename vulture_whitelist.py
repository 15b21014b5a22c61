"""Names that vulture (``make lint``'s dead-code check) cannot see used: they are used by name at run time.

Only names used dynamically belong here, each with why. Registered models and pytest
fixtures are covered by ``ignore_decorators`` in pyproject.toml ([tool.vulture]). This file
is read by vulture, never imported or run.
"""
# ruff: noqa: B018, F821

# Slicer's module loader instantiates the classes named after the module file: the module,
# its widget and its self-test.
SAFNetSpine
SAFNetSpineWidget
SAFNetSpineTest
# Properties of the module's qSlicerScriptedLoadableModule parent that Slicer reads for its
# module list and help panel.
_.categories
_.dependencies
_.contributors
_.helpText
_.acknowledgementText
# Slicer calls the widget's enter() each time the module is shown.
_.enter
# Slicer's self-test (slicer.testing.runUnitTest) and unittest run a TestCase's runTest.
_.runTest
# Held, never read: the widget keeps each panel section (its methods are connected to Qt
# signals) alive as long as the panel.
_.segmentSection
_.finetuneSection
_.measureSection
# Qt properties, set through PythonQt's attribute mapping: Qt reads them.
_.enabled
_.visible
_.toolTip
_.styleSheet
_.currentIndex
# torch.backends.cudnn.benchmark: a flag torch reads.
_.benchmark
# Module-level __dir__ (PEP 562): dir(SAFNetSpineLib) calls it.
__dir__
# Run from the shell to regenerate the bundled sample (Resources/SampleData/README.md).
write_sample
# pytest reads a test module's pytestmark.
pytestmark
# A weights-manifest field: written to manifest.json by dataclasses.asdict (docs/INTERFACES.md).
_.model_card
