"""Sections of the SAFNetSpine panel that need Qt, each wiring its widgets of the ``.ui`` to the Logic.

* :mod:`.segment_section`: Segment (sample, output node, progress, naming status) and saving a case.
* :mod:`.levels_section`: Rename levels (place a point, name it) and the prompt after uncertain naming.
* :mod:`.measure_section`: Measure and its table.
* :mod:`.finetune_section`: start / cancel fine-tuning and its outcome.
* :mod:`.models_section`: the model selector, the versions table, activate / roll back.
* :mod:`.stores_section`: the work folder field, the store counts, open / clear a store.
* :mod:`.setup_section`: Python packages (versions, install, upgrade) and the devices.

The module file ``SAFNetSpine.py`` keeps the Module / Widget / Logic / Test classes and
creates these sections; they start child processes through the Widget's ``startJob``.
"""
