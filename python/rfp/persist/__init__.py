"""Model files (docs/DESIGN.md, "Conventions users rely on"): ``write``
saves a fitted model as a zip of JSON and .npy members, atomically, never
damaging an existing file; ``read`` checks every part before rebuilding the
model.  ``rfp.load`` and ``FittedModel.save`` are the public entry points."""
