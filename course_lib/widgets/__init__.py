"""Interactive explorers: thin ipywidgets UIs over plain plotting functions, one module per topic.

=====================================  ==========================================================
module                                 what
=====================================  ==========================================================
``course_lib.widgets.ui``              the harness: :func:`slider`, :func:`checkbox`,
                                       :func:`explorer` (and :func:`wide`, :func:`plot_defaults`)
``course_lib.widgets.divergences``     notebook 00: forward vs reverse KL fits
``course_lib.widgets.autoencoders``    notebook 01: denoising, decoding random codes
``course_lib.widgets.vae``             notebook 02: gradient estimators, decoder-std sweep, ellipses
``course_lib.widgets.gan``             notebook 03: the optimal discriminator and saturation
``course_lib.widgets.diffusion``       notebooks 04-05: the scaled chain, noised and reverse marginals
``course_lib.widgets.score``           notebook 06: noised score fields, Langevin dynamics
``course_lib.widgets.sde``             notebook 07: reverse-time SDE vs probability-flow ODE
=====================================  ==========================================================

Every plot function is plain (``plot_x(**values) -> Figure``, starting values as its defaults) and
every explorer starts at those defaults. The topic modules hold no mathematics: they call the
topic's module in ``course_lib`` and :mod:`course_lib.plotting`. Every public name is also
available here, e.g. ``widgets.plot_forward_reverse_kl()``, as the notebooks call them.
"""

from __future__ import annotations

from course_lib.widgets import autoencoders, diffusion, divergences, gan, score, sde, ui, vae
from course_lib.widgets.autoencoders import *  # noqa: F401,F403
from course_lib.widgets.diffusion import *  # noqa: F401,F403
from course_lib.widgets.divergences import *  # noqa: F401,F403
from course_lib.widgets.gan import *  # noqa: F401,F403
from course_lib.widgets.score import *  # noqa: F401,F403
from course_lib.widgets.sde import *  # noqa: F401,F403
from course_lib.widgets.ui import *  # noqa: F401,F403
from course_lib.widgets.vae import *  # noqa: F401,F403

TOPICS = (divergences, autoencoders, vae, gan, diffusion, score, sde)

__all__ = list(ui.__all__) + [name for topic in TOPICS for name in topic.__all__]
