"""A fixed seed gives the very parameters it gave before the package was reorganised.

The numbers below were measured with the code of commit 93ddc58 (before steps, loops and the run
were separated), in NUMBA and FAST_COMPILE alike, float64: pretraining, fine-tuning with
momentum, learning-rate decay and input noise on a small synthetic problem.  A change to the
maths or to the order in which noise is drawn moves them; a change of layout must not.
"""

import numpy as np
import pytensor
import pytest

from conftest import synthetic_digits
from support import CPU_MODE
from sda.run import train_SdA

BEFORE = {
    "sums": [-96.06072422369965, 0.8502567067028918, -17.219477854784827, -1.6294059694441239],
    "abs": [421.51983653920047, 2.8674728593237546, 107.73935440595764, 2.6561573353839623,
            19.132285818222414, 1.11493870454479],
    "b_prime": [-25.147926200206193, -4.021603100804419],
    "pre": [[40.90315903142481, 33.61443102176053], [10.270542314472722, 7.187489929934377]],
    "valid": 0.43333333333333335,
}


def test_a_fixed_seed_gives_the_parameters_it_gave_before_the_redesign():
    with pytensor.config.change_flags(floatX="float64"):
        x, y = synthetic_digits(260, seed=3)
        x = x.reshape(len(x), -1) / 255.0
        datasets = [(x[:200], y[:200]), (x[200:230], y[200:230]), (x[230:], y[230:])]
        run = train_SdA(datasets, hidden_layer_sizes=[12, 8], corruption_levels=[0.1, 0.2],
                        pretraining_epochs=2, pretrain_lr=0.05, pretrain_batch_size=10, training_epochs=4,
                        finetune_lr=0.2, finetune_batch_size=10, finetune_momentum=0.5, finetune_lr_decay=0.9,
                        finetune_corruption=0.1, patience_epochs=100, seed=5, mode=CPU_MODE,
                        progress=False, log=None)
    params = [p.get_value() for p in run.model.params]
    np.testing.assert_allclose([p.sum() for p in params[:4]], BEFORE["sums"], rtol=1e-9)
    np.testing.assert_allclose([np.abs(p).sum() for p in params], BEFORE["abs"], rtol=1e-9)
    np.testing.assert_allclose([d.b_prime.get_value().sum() for d in run.model.dA_layers], BEFORE["b_prime"],
                               rtol=1e-9)
    np.testing.assert_allclose(run.pretraining.costs, BEFORE["pre"], rtol=1e-9)
    assert run.finetuning.best_validation_error == pytest.approx(BEFORE["valid"])
