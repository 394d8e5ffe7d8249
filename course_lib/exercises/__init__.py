"""Registered exercises, one module per notebook topic; every module here is loaded by
:func:`course_lib.grading.exercises`, so a new exercise only needs ``register(Exercise(...))``."""
