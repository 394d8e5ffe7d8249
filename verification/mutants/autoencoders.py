"""Planted mistakes in ``course_lib/autoencoders.py``.

Each names the notebook-01 assert and the unit tests expected to catch it; see
:mod:`verification.mutations`.
"""

from verification.mutations import Mutation

NB = ("01",)
TESTS = ("tests/test_autoencoders.py",)

MUTATIONS = [
    Mutation(
        name="contractive-penalty-not-squared",
        file="autoencoders.py",
        old="            total = total + g.reshape(n, -1).pow(2).sum(dim=1)   # sum_i (dh_j/dx_i)^2\n"
            "    return total\n",
        new="            total = total + g.reshape(n, -1).pow(2).sum(dim=1)   # sum_i (dh_j/dx_i)^2\n"
            "    return total.sqrt()\n",
        breaks="the contractive penalty is the Frobenius norm of the encoder Jacobian, not its square",
        notebooks=NB, tests=TESTS,
    ),
    Mutation(
        name="pca-uncentred",
        file="autoencoders.py",
        old="_, _, vh = torch.linalg.svd(x - mean, full_matrices=False)",
        new="_, _, vh = torch.linalg.svd(x, full_matrices=False)",
        breaks="PCA by the SVD of the uncentred data: the first component follows the mean",
        notebooks=NB, tests=TESTS,
    ),
]
