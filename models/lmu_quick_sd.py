"""Quick sigma-delta LMU on psMNIST: `lmu_quick` with Lava's sigma-delta neurons.

The same network, data and training budget as ``lmu_quick.py`` (49-step
psMNIST from 4x4-pooled digits; 64 hidden units, order 32, theta 49), but the
hidden layer is ``SigmaDelta(nengo.RectifiedLinear())`` -- Lava's stock
Loihi 2 sigma-delta neuron (`nengo_hybrid.SigmaDelta`) -- instead of
`.HybridSpiking`. It sends *changes* of its ReLU activity, as graded messages,
when they reach the threshold; constant activity costs no messages. This is the
recipe to compare with ``lmu_quick`` (hybrid spiking): ``nengo-hybrid run
--model lmu_quick_sd --profile loihi2`` trains, evaluates (messages and
payload bits), checks and deploys it on Loihi 2 semantics (Loihi 1 has no
sigma-delta neuron).

The interpolation knob is the **threshold** (as the precision is for hybrid
neurons): the schedule anneals it linearly from 0 (every change sent: exactly
the rate network) to the deployment threshold over the first 70% of training,
then holds it (``hold=0.3``: fine-tuning at the deployment threshold).

Why threshold 0.1 (in units of the hidden ReLU activity, ``max(J, 0)`` as in
``lmu_quick``; activities reach a few units): measured on the embedded digits
(``--data embedded``: 4,000 training sequences, 500 test), this recipe with
only the final threshold changed (``--schedule linear:0:T:0.3``), seed 0, on
a shared 2-core machine (training 1.5-3 minutes each, evaluate under 1):

=========  ===============  =============  ======================
threshold  val. accuracy    test accuracy  messages / (steps x
                                           neurons), test
=========  ===============  =============  ======================
0 (rate)   0.876            0.874          77.7%
0.1        0.868            0.866          63.1%
0.2        0.814            0.816          57.2%
0.3        0.824            0.830          47.0%
=========  ===============  =============  ======================

Threshold 0 already sends only 78% (a ReLU that stays at 0 sends nothing);
0.1 keeps the rate network's accuracy within a point while sending a fifth
fewer messages than it, 63% of one per neuron and step; larger thresholds
save more messages but lose 4-6 points. (One seed each: differences of a
point or two are within the noise, e.g. 0.2 vs 0.3.) On the Loihi 2
emulator (``deploy --profile loihi2``, 500 test sequences) the 0.1 network
scored 0.856 (NengoDL on the same: 0.866), its 50 first predictions equal to
Nengo's reference simulator's, with payloads of 13 bits (sign included) of
the profile's 16.

Recipe format: as ``lmu_quick.py``, plus ``neuron="sigma_delta"``; the
``schedule`` holds thresholds (``>= 0``), and an optional ``threshold``
overrides the deployment threshold (default: where the schedule ends). See
`nengo_hybrid.tasks.SequenceClassification`.
"""

import nengo  # noqa: F401 (Nengo GUI expects a Nengo script)

from nengo_hybrid.tasks import gui_model

RECIPE = dict(
    task="psmnist",
    data=dict(source="auto", pool=4),
    n_steps=49,
    network=dict(n_hidden=64, order=32, theta=49, memory="precomputed"),
    neuron="sigma_delta",
    schedule=dict(type="Linear", start=0.0, end=0.1, hold=0.3),
    epochs=10,
    minibatch_size=100,
    learning_rate=3e-3,
    seed=0,
)

model = gui_model(RECIPE)
