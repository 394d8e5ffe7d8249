"""Checks of the course's claims beyond the test suite: robustness and mutation runs.

- :mod:`verification.limits`: how long the course's tools wait for a notebook cell, a notebook and
  a test (one place for all of them).
- :mod:`verification.kernel_client`: the kernel client every notebook execution uses (nbclient with
  jupyter_client's own client can lose the wake-up of a reply and stall a cell under load).
- :mod:`verification.run` executes one notebook in a fresh kernel under a given environment
  (``COURSE_SEED``, ``COURSE_THREADS``, ``ATEN_CPU_CAPABILITY``) and reports the first failing
  cell and its assert.
- :mod:`verification.robustness` runs every notebook under several seeds and machine settings
  and prints a table notebook x variant -> passed / the failing assert
  (``python3 course.py robustness``).
- :mod:`verification.mutations` plants textbook mistakes in ``course_lib`` one at a time and
  reports which notebook assert and which unit test catch each one
  (``python3 course.py mutations``).
"""
