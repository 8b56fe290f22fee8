"""Reusable networks: the Legendre Memory Unit (LMU) as a Nengo network.

The LMU (Voelker, Kajić & Eliasmith 2019) has a fixed linear *memory* that
represents a sliding window of length ``theta`` (in steps) of its input with
``order`` Legendre coefficients, and a trainable nonlinear *hidden* layer. This
implementation has the connections of the original psMNIST LMU: input→memory
(fixed), memory→hidden, input→hidden, hidden→hidden (trainable). Its memory is
driven by the input only (no hidden→memory, no memory→memory weights), so it is
linear time-invariant.

Memory update (zero-order-hold discretisation with one step per input sample)::

    m[t] = Ad m[t-1] + Bd u[t]
    h[t] = f(Wm m[t] + Wu u[t] + Wh h[t-1] + b)

where ``Ad, Bd = cont2discrete(A / theta, B / theta, dt=1, method="zoh")`` and
``f`` is the hidden neuron type (e.g. a `.HybridSpiking` quantizer).

The memory can be

* ``"linear"``: a non-spiking Nengo node with the recurrence ``Ad`` (step by step);
* ``"precomputed"``: the same linear memory computed for the whole sequence at
  once outside the simulator (`LMU.memory_response`, a causal convolution) and fed
  to the ``memory`` input node; identical outputs, much cheaper per step;
* a `.HybridSpiking` neuron type: the memory is itself quantized (on/off pairs of
  neurons per dimension, the recurrence running on their spikes), as needed to
  put the memory on a neuromorphic chip.
"""

import functools
import sys

import nengo
import numpy as np
import scipy.fft
from nengo.exceptions import ValidationError
from nengo.params import BoolParam, IntParam, NumberParam
from scipy.linalg import expm
from scipy.special import eval_legendre

from nengo_hybrid.neurons import HybridSpiking, SigmaDelta

MEMORY_MODES = ("linear", "precomputed")


def legendre_system(order, theta):
    """Continuous-time LMU system ``(A, B)`` for a window of ``theta`` steps.

    ``A[i, j] = (2i+1)/theta * (-1 if i < j else (-1)**(i-j+1))`` and
    ``B[i] = (2i+1) (-1)**i / theta`` (Voelker et al. 2019).
    """
    q = np.arange(order, dtype=np.float64)
    r = (2 * q + 1)[:, None]
    i, j = np.meshgrid(q, q, indexing="ij")
    A = np.where(i < j, -1.0, (-1.0) ** (i - j + 1)) * r / theta
    B = ((-1.0) ** q[:, None]) * r / theta
    return A, B


def discretize_zoh(A, B, dt=1.0):
    """Zero-order-hold discretisation, equal to ``scipy.signal.cont2discrete``."""
    n, m = B.shape
    block = np.zeros((n + m, n + m))
    block[:n, :n] = A * dt
    block[:n, n:] = B * dt
    em = expm(block)
    return em[:n, :n], em[:n, n:]


def lmu_matrices(order, theta):
    """Discrete ``(Ad, Bd)`` of the LMU memory, one step per input sample."""
    return discretize_zoh(*legendre_system(order, theta))


def delay_readout(order, delay_fraction):
    """Readout ``C`` with ``C @ m[t] ≈ u[t - delay_fraction * theta]``.

    ``C[i] = P_i(2 r - 1)`` (shifted Legendre polynomials), ``0 <= r <= 1``.
    """
    r = np.atleast_1d(np.asarray(delay_fraction, dtype=np.float64))
    return np.stack([eval_legendre(i, 2 * r - 1) for i in range(order)], axis=-1)


def impulse_response(order, theta, n_steps):
    """``H[k] = Ad**k Bd``, shape ``(n_steps, order)``: the memory's impulse response."""
    Ad, Bd = lmu_matrices(order, theta)
    H = np.zeros((n_steps, order))
    state = Bd[:, 0]
    for k in range(n_steps):
        H[k] = state
        state = Ad @ state
    return H


#: largest convolution matrix (``n_steps**2 * order`` float64 values, 64 MB) for
#: which `memory_response` multiplies by it instead of using FFTs
TOEPLITZ_MAX = 2**23

#: sequences convolved at once by `memory_response` (bounds its temporaries)
MEMORY_CHUNK = 256


def memory_response(u, order, theta):
    """Compute the linear LMU memory for whole sequences at once.

    A causal convolution of each input dimension with `impulse_response`, equal
    to running ``m[t] = Ad m[t-1] + Bd u[t]`` from ``m[-1] = 0``. Short
    sequences are multiplied by the convolution (Toeplitz) matrix, long ones
    convolved by FFT; either way in float64, `MEMORY_CHUNK` sequences at a
    time, so the temporaries stay small whatever the number of sequences.

    Parameters
    ----------
    u : (batch, n_steps, input_d) array
    order, theta : as for `LMU`

    Returns
    -------
    m : (batch, n_steps, input_d * order) float32 array
        Ordered input dimension major (all orders of input 0, then input 1, ...).
    """
    u = np.asarray(u)
    if u.ndim != 3:
        raise ValueError(f"u must have shape (batch, n_steps, input_d), got {u.shape}")
    n, n_steps, input_d = u.shape
    convolve = (
        _toeplitz_convolution
        if n_steps * n_steps * order <= TOEPLITZ_MAX
        else _fft_convolution
    )
    kernel = _memory_kernel(order, float(theta), n_steps, convolve)
    m = np.empty((n, n_steps, input_d * order), dtype=np.float32)
    for i in range(0, n, MEMORY_CHUNK):
        chunk = np.asarray(u[i : i + MEMORY_CHUNK], dtype=np.float64)
        m[i : i + MEMORY_CHUNK] = convolve(chunk, kernel).reshape(
            len(chunk), n_steps, -1
        )
    return m


@functools.lru_cache(maxsize=8)
def _memory_kernel(order, theta, n_steps, convolve):
    """The impulse response in the form ``convolve`` takes (cached)."""
    H = impulse_response(order, theta, n_steps)  # (n_steps, order)
    if convolve is _fft_convolution:
        return scipy.fft.rfft(H.T, n=2 * n_steps, axis=-1)  # (order, freqs)
    # T[s, t, k] = H[t - s, k] for t >= s: m[:, t] = sum_s u[:, s] T[s, t]
    T = np.zeros((n_steps, n_steps, order))
    for s in range(n_steps):
        T[s, s:] = H[: n_steps - s]
    return T.reshape(n_steps, n_steps * order)


def _toeplitz_convolution(u, kernel):
    """``(batch, n_steps, input_d, order)`` memory by one matrix product."""
    n, n_steps, input_d = u.shape
    m = u.transpose(0, 2, 1).reshape(n * input_d, n_steps) @ kernel  # one GEMM
    return m.reshape(n, input_d, n_steps, -1).transpose(0, 2, 1, 3)


def _fft_convolution(u, kernel):
    """``(batch, n_steps, input_d, order)`` memory by FFT convolution."""
    n_steps = u.shape[1]
    U = scipy.fft.rfft(u.transpose(0, 2, 1), n=2 * n_steps, axis=-1)
    m = scipy.fft.irfft(U[:, :, None, :] * kernel, n=2 * n_steps, axis=-1)
    return m[..., :n_steps].transpose(0, 3, 1, 2)  # (batch, steps, input_d, order)


def hybrid_relu(precision=1.0, dt=0.001, max_spikes=None):
    """A `.HybridSpiking` ReLU whose output is ``max(J, 0)`` in quanta of ``1/precision``.

    The base rate is ``max(J, 0) / dt`` and the amplitude ``dt``, so ``precision``
    is the number of quanta (spikes per step) per unit of activity.
    """
    return HybridSpiking(
        nengo.RectifiedLinear(amplitude=1.0 / dt),
        precision=precision,
        max_spikes=max_spikes,
        amplitude=dt,
    )


def hybrid_tanh(precision=1.0, dt=0.001, max_spikes=None):
    """A `.HybridSpiking` tanh whose output is ``tanh(J)`` in quanta of ``1/precision``."""
    return HybridSpiking(
        nengo.Tanh(tau_ref=dt), precision=precision, max_spikes=max_spikes, amplitude=dt
    )


def _glorot(rng, n_out, n_in):
    limit = np.sqrt(6.0 / (n_in + n_out))
    return rng.uniform(-limit, limit, size=(n_out, n_in))


def _orthogonal(rng, n):
    q, r = np.linalg.qr(rng.normal(size=(n, n)))
    return q * np.sign(np.diag(r))


class LMU(nengo.Network):
    """Legendre Memory Unit with a (hybrid-)spiking hidden layer.

    Parameters
    ----------
    n_hidden : int
        Number of hidden neurons (212 in the paper configuration).
    order : int
        Legendre coefficients per input dimension (256 in the paper).
    theta : float
        Memory window in steps (784 in the paper: the whole sequence).
    input_d : int
        Input dimensions (1 for psMNIST).
    output_d : int or None
        If set, a trainable linear readout with bias (e.g. 10 classes) is added;
        its output is the ``output`` node, otherwise ``output`` is the hidden layer.
    hidden_neurons : NeuronType
        Hidden neuron type with unit gain (neuron-to-neuron connections), default
        ``hybrid_relu(precision=1)``; use the base rate type (e.g.
        ``nengo.RectifiedLinear()``) for the non-spiking LMU.
    memory : "linear", "precomputed" or HybridSpiking
        The memory implementation (see the module docstring). With
        ``"precomputed"``, feed ``[memory_response(u, order, theta), u]``
        (concatenated on the last axis) to the ``memory`` node, which then also
        carries the input to the hidden layer (`LMU.inputs` builds the dict).
    seed : int
        Seed of the weight initialisation (the `nengo.Network` seed is left to
        ``kwargs``: sharing one seed with the parent network makes NengoDL see
        colliding object seeds).
    **kwargs
        Passed to `nengo.Network` (``label``, ``seed``, ...).

    Attributes
    ----------
    input : nengo.Node
        Connect the input signal here (a passthrough node of ``input_d``).
    memory : nengo.Node
        The (decoded) memory, ``input_d * order`` dimensions; in
        ``"precomputed"`` mode an input node of the memory followed by the input
        (``input_d * order + input_d``).
    hidden : nengo.Ensemble
        The hidden population (``hidden.neurons`` carries the activities).
    output : nengo.Node
        The readout (``output_d``) or the hidden activities (``n_hidden``).
    fixed_connections : list of nengo.Connection
        Connections holding ``Ad``/``Bd``; marked non-trainable for NengoDL.
    """

    n_hidden = IntParam("n_hidden", low=1)
    order = IntParam("order", low=1)
    theta = NumberParam("theta", low=0, low_open=True)
    input_d = IntParam("input_d", low=1)
    output_d = IntParam("output_d", low=1, optional=True)
    quantized_memory = BoolParam("quantized_memory")

    def __init__(
        self,
        n_hidden,
        order,
        theta,
        input_d=1,
        output_d=None,
        hidden_neurons=None,
        memory="linear",
        seed=0,
        **kwargs,
    ):
        kwargs.setdefault("label", "LMU")
        super().__init__(**kwargs)
        self.n_hidden = n_hidden
        self.order = order
        self.theta = theta
        self.input_d = input_d
        self.output_d = output_d
        self.quantized_memory = isinstance(memory, HybridSpiking)
        if not self.quantized_memory and memory not in MEMORY_MODES:
            raise ValidationError(
                f"memory must be 'linear', 'precomputed' or a HybridSpiking neuron "
                f"type, got {memory!r}",
                attr="memory",
                obj=self,
            )
        self.memory_mode = "quantized" if self.quantized_memory else memory
        if hidden_neurons is None:
            hidden_neurons = hybrid_relu(precision=1.0)
        self.hidden_neurons = hidden_neurons
        self.fixed_connections = []
        #: objects NengoDL must not train (`nengo_hybrid.dl.configure_classifier`)
        self.fixed = []
        rng = np.random.RandomState(seed)
        with self:
            self.input = nengo.Node(size_in=input_d, label="input")
            self._build_memory(memory)
            self._build_hidden(rng)
            if output_d is not None:
                self._build_readout(rng)
            else:
                self.output = self.hidden_output
            self.fixed += self.fixed_connections

    @property
    def memory_d(self):
        """Dimensions of the memory (``input_d * order``)."""
        return self.input_d * self.order

    def _build_memory(self, memory):
        Ad, Bd = lmu_matrices(self.order, self.theta)
        eye = np.eye(self.input_d)
        A_all, B_all = np.kron(eye, Ad), np.kron(eye, Bd)  # block diagonal
        if self.memory_mode == "precomputed":
            # one input node carries [m, u], so one connection (one matmul per
            # step) applies the whole hidden input kernel, as in keras-lmu
            self.memory = nengo.Node(
                np.zeros(self.memory_d + self.input_d), label="memory"
            )
            return
        self.memory = nengo.Node(size_in=self.memory_d, label="memory")
        if self.memory_mode == "linear":
            fixed = [
                nengo.Connection(
                    self.input, self.memory, transform=B_all, synapse=None
                ),
                nengo.Connection(self.memory, self.memory, transform=A_all, synapse=0),
            ]
        else:
            # on/off pairs: neuron 2i+0 carries max(m_i, 0), neuron 2i+1 max(-m_i, 0)
            enc = np.kron(np.eye(self.memory_d), [[1.0], [-1.0]])  # (2d, d)
            dec = enc.T  # (d, 2d)
            self.memory_neurons = nengo.Ensemble(
                2 * self.memory_d,
                1,
                neuron_type=memory,
                gain=np.ones(2 * self.memory_d),
                bias=np.zeros(2 * self.memory_d),
                label="memory_neurons",
            )
            self.fixed.append(self.memory_neurons)
            neurons = self.memory_neurons.neurons
            fixed = [
                nengo.Connection(
                    self.input, neurons, transform=enc @ B_all, synapse=None
                ),
                nengo.Connection(
                    neurons, neurons, transform=enc @ A_all @ dec, synapse=0
                ),
                nengo.Connection(neurons, self.memory, transform=dec, synapse=None),
            ]
        self.fixed_connections.extend(fixed)

    def _build_hidden(self, rng):
        n = self.n_hidden
        self.hidden = nengo.Ensemble(
            n,
            1,
            neuron_type=self.hidden_neurons,
            gain=np.ones(n),
            bias=np.zeros(n),
            label="hidden",
        )
        neurons = self.hidden.neurons
        n_in = self.memory_d + self.input_d
        kernel = _glorot(rng, n, n_in)
        if self.memory_mode == "precomputed":
            self.memory_to_hidden = nengo.Connection(
                self.memory, neurons, transform=kernel, synapse=None
            )
            self.input_to_hidden = self.memory_to_hidden
        else:
            self.memory_to_hidden = nengo.Connection(
                self.memory, neurons, transform=kernel[:, : self.memory_d], synapse=None
            )
            self.input_to_hidden = nengo.Connection(
                self.input, neurons, transform=kernel[:, self.memory_d :], synapse=None
            )
        self.hidden_to_hidden = nengo.Connection(
            neurons, neurons, transform=_orthogonal(rng, n), synapse=0
        )
        self.hidden_output = nengo.Node(size_in=n, label="hidden_output")
        conn = nengo.Connection(neurons, self.hidden_output, synapse=None)
        self.fixed_connections.append(conn)

    def _build_readout(self, rng):
        self.output = nengo.Node(size_in=self.output_d, label="output")
        self.readout = nengo.Connection(
            self.hidden_output,
            self.output,
            transform=_glorot(rng, self.output_d, self.n_hidden),
            synapse=None,
        )
        self.readout_bias_node = nengo.Node([1.0], label="readout_bias")
        self.readout_bias = nengo.Connection(
            self.readout_bias_node,
            self.output,
            transform=np.zeros((self.output_d, 1)),
            synapse=None,
        )

    def trainable_parameters(self):
        """Number of trainable parameters, counted from the Nengo structure.

        Hidden: ``Wm, Wu, Wh`` and the bias; readout: weights and bias. The memory
        (``Ad``, ``Bd``) is fixed and not counted.
        """
        return count_parameters(self)

    def inputs(self, u, input_node=None):
        """Simulator input dict for sequences ``u`` ``(batch, n_steps, input_d)``.

        ``input_node`` is the node feeding ``self.input`` (keyed by it). In
        ``"precomputed"`` mode the memory is added (`memory_response`).
        """
        data = {} if input_node is None else {input_node: u}
        if self.memory_mode == "precomputed":
            m = memory_response(u, self.order, self.theta)
            data[self.memory] = np.concatenate(
                [m, np.asarray(u, dtype=m.dtype)], axis=-1
            )
        return data


def _keep_history(network, probe):
    """The full history of ``probe`` in NengoDL (when the network is configured)."""
    try:
        network.config[probe].keep_history = True
    except (AttributeError, nengo.exceptions.ConfigError):
        pass


def _configure_if_nengo_dl(network):
    """Apply NengoDL's settings to a classifier when NengoDL is already loaded.

    Building a network never imports TensorFlow; a user who trains it in
    NengoDL has NengoDL imported, and gets the settings the classifier needs
    (`nengo_hybrid.dl.configure_settings`) as before.
    """
    if "nengo_dl" in sys.modules:
        from nengo_hybrid import dl

        dl.configure_settings(network)


def _nengo_dl_trainable(configs, obj):
    """NengoDL's ``get_trainable``: the innermost ``trainable`` setting, else ``1``.

    ``configs`` are the configs of the networks containing ``obj``, outermost
    first (``nengo_dl.tensor_graph.TensorGraph.mark_signals``). ``1`` means "not
    set" (trainable by default).
    """
    trainable = 1
    for cfg in configs:
        try:
            value = getattr(cfg[obj], "trainable", None)
        except (nengo.exceptions.ConfigError, AttributeError):
            value = None
        if value is not None:
            trainable = value
    return trainable


def _nengo_dl_setting(network, name, default):
    """A ``nengo_dl.configure_settings`` value on ``network`` (without NengoDL)."""
    try:
        params = network.config[nengo.Network]
        return getattr(params, name)
    except (nengo.exceptions.ConfigError, AttributeError):
        return default


def _trainable_signals(network):
    """``{(kind, obj): trainable}`` as NengoDL marks them, for ``kind`` in
    ``"bias"`` (ensembles), ``"encoders"`` (ensembles), ``"weights"`` (connections).

    Follows ``TensorGraph.mark_signals`` of nengo-dl 3.x: subnetworks first,
    ensemble encoders and (non-Direct) neuron biases, connection weights, then
    signals modified by a Nengo learning rule become non-trainable unless they
    were explicitly set ``trainable = True``.
    """
    marks = {}

    def mark(configs, net):
        configs = configs + [net.config]
        for subnet in net.networks:
            mark(configs, subnet)
        for ens in net.ensembles:
            ens_trainable = _nengo_dl_trainable(configs, ens)
            marks["encoders", ens] = ens_trainable
            if not isinstance(ens.neuron_type, nengo.Direct):
                neurons = _nengo_dl_trainable(configs, ens.neurons)
                if neurons and type(neurons) is int:  # not set: follow the ensemble
                    neurons = ens_trainable
                marks["bias", ens] = neurons
        for conn in net.connections:
            if conn.has_weights:
                marks["weights", conn] = _nengo_dl_trainable(configs, conn)
        for conn in net.connections:
            rules = conn.learning_rule
            if rules is None:
                continue
            if isinstance(rules, dict):
                rules = list(rules.values())
            elif not isinstance(rules, list):
                rules = [rules]
            for rule in rules:
                key = (
                    ("weights", conn)
                    if rule.modifies in ("weights", "decoders")
                    else ("encoders", conn.post_obj)
                )
                if marks.get(key) is not True:
                    marks[key] = False

    mark([], network)
    # `fixed` objects are what `nengo_hybrid.dl.configure_settings` marks
    # trainable=False on the top-level network (the innermost setting wins)
    for net in [network] + network.all_networks:
        for obj in getattr(net, "fixed", ()):
            if isinstance(obj, nengo.Ensemble):
                for kind in ("encoders", "bias"):
                    if marks.get((kind, obj)) is not True:
                        marks[kind, obj] = False
            elif marks.get(("weights", obj)) is not True and obj.has_weights:
                marks["weights", obj] = False
    return marks


def _decoded(conn):
    pre = conn.pre_obj
    return isinstance(pre, nengo.Ensemble) and not isinstance(
        pre.neuron_type, nengo.Direct
    )


def _weight_count(conn):
    """Entries of the ``weights`` signal Nengo builds for ``conn``."""
    transform = conn.transform
    if _decoded(conn):
        n_pre = conn.pre_obj.n_neurons
        if conn.solver.weights:  # full (post neurons x pre neurons) matrix
            return conn.post_obj.n_neurons * n_pre
        # decoders (size_mid, n_pre), multiplied by a Dense transform if any
        if isinstance(transform, nengo.transforms.Dense):
            if len(transform.init_shape) == 2:
                return transform.size_out * n_pre
        return conn.size_mid * n_pre
    if isinstance(transform, nengo.transforms.NoTransform):
        return 0
    if isinstance(transform, nengo.transforms.Dense):
        # scalar init: one shared weight; 1-d init: the diagonal only
        return int(np.prod(transform.init_shape))
    if isinstance(transform, nengo.transforms.Sparse):
        init = transform.init
        if isinstance(init, nengo.transforms.SparseMatrix):
            return len(init.indices)
        return int(init.tocoo().data.size)
    if isinstance(
        transform, (nengo.transforms.Convolution, nengo.transforms.ConvolutionTranspose)
    ):
        return int(np.prod(transform.kernel_shape))
    return int(np.size(transform.sample(rng=np.random.RandomState(0))))


def _carries_signal(conn, silent):
    """False if ``conn`` reads a silent Direct ensemble without a function."""
    return conn.pre_obj not in silent or conn.function is not None


def _silent_direct_ensembles(network):
    """`nengo.Direct` ensembles whose output is always zero (nothing drives them).

    NengoDL repeatedly removes operators whose input is known to be zero, so a
    connection out of such an ensemble has no weights variable, and the
    ensemble it feeds is silent too unless a synapse (a state update) or a
    function lies in between.
    """
    silent = {
        ens
        for ens in network.all_ensembles
        if isinstance(ens.neuron_type, nengo.Direct)
    }
    changed = True
    while changed:
        changed = False
        for conn in network.all_connections:
            if conn.post_obj in silent and (
                _carries_signal(conn, silent) or conn.synapse is not None
            ):
                silent.discard(conn.post_obj)
                changed = True
    return silent


def count_parameters(network):
    """Trainable parameters of ``network`` as NengoDL trains them by default.

    Equals the total size of ``nengo_dl.Simulator(network).keras_model
    .trainable_weights`` for networks made of Nengo objects (weights inside
    Keras layers of ``nengo_dl.TensorNode``/``Layer`` are not counted). That is,
    following NengoDL's ``mark_signals``:

    * every ensemble's **biases** (``n_neurons``; not for `nengo.Direct`) — also
      for an ensemble with no input, since the bias still drives its neurons;
    * an ensemble's **encoders** (``n_neurons x dimensions``; ``dimensions**2``
      for `nengo.Direct`) when a connection targets the ensemble itself (not its
      ``.neurons``) and is not dropped as above;
    * every connection's **weights** (except those NengoDL drops because they
      multiply the always-zero output of a `nengo.Direct` ensemble nothing
      drives): decoders of decoded connections
      (``size_mid x n_neurons``, or ``size_out x n_neurons`` with a matrix
      transform), dense matrices, one value for a scalar transform, the diagonal
      for a 1-d transform, the nonzeros of a sparse one, convolution kernels.

    Objects set ``trainable = False`` (``net.config[obj]``, the innermost
    network setting wins), signals changed by a Nengo learning rule, and
    everything in an ``inference_only`` network are not counted.
    """
    if _nengo_dl_setting(network, "inference_only", False):
        return 0
    marks = _trainable_signals(network)
    silent = _silent_direct_ensembles(network)
    live = [c for c in network.all_connections if _carries_signal(c, silent)]
    # an ensemble's encoders multiply its decoded input; weight-solver
    # connections write to the neurons instead
    with_input = {
        conn.post_obj
        for conn in network.all_connections
        if isinstance(conn.post_obj, nengo.Ensemble)
        and (_carries_signal(conn, silent) or conn.synapse is not None)
        and not (_decoded(conn) and conn.solver.weights)
    }
    total = 0
    for ens in network.all_ensembles:
        if marks.get(("bias", ens)):
            total += ens.n_neurons
        if marks.get(("encoders", ens)) and ens in with_input:
            direct = isinstance(ens.neuron_type, nengo.Direct)
            total += ens.dimensions * (ens.dimensions if direct else ens.n_neurons)
    for conn in live:
        if marks.get(("weights", conn)):
            total += _weight_count(conn)
    return total


def lmu_param_count(n_hidden, order, input_d=1, output_d=None):
    """Closed-form trainable-parameter count of `LMU` (matches `count_parameters`)."""
    hidden = (order * input_d + input_d) * n_hidden + n_hidden * n_hidden + n_hidden
    readout = 0 if output_d is None else (n_hidden + 1) * output_d
    return hidden + readout


class LMUClassifier(nengo.Network):
    """A sequence classifier: input node → `LMU` → readout (logits on the last step).

    Trained in NengoDL with ``stateful=False`` and ``keep_history=False``
    (`nengo_hybrid.dl.configure_classifier`), so ``probe`` returns only the last
    step's logits, to be compared with labels of shape ``(N, 1, 1)``
    (`LMUClassifier.targets`). It follows the classifier contract of
    `nengo_hybrid.tasks`.

    Parameters
    ----------
    n_classes : int
        Readout size.
    stimulus : array_like or nengo.Process, optional
        Output of the input node (default zeros, to be fed by the simulator).
    network_seed : int
        Seed of this `nengo.Network`.
    **lmu_kwargs
        Passed to `LMU` (``n_hidden, order, theta, hidden_neurons, memory, seed``).

    Attributes
    ----------
    inp : nengo.Node
        The input node (feed ``(N, n_steps, input_d)`` sequences).
    lmu : LMU
    probe : nengo.Probe
        Logits on the last step.
    """

    def __init__(
        self,
        n_classes=10,
        stimulus=None,
        label="LMUClassifier",
        network_seed=0,
        **lmu_kwargs,
    ):
        super().__init__(label=label, seed=network_seed)
        with self:
            input_d = lmu_kwargs.get("input_d", 1)
            output = np.zeros(input_d) if stimulus is None else stimulus
            self.inp = nengo.Node(output, size_out=input_d, label="pixels")
            self.lmu = LMU(output_d=n_classes, **lmu_kwargs)
            nengo.Connection(self.inp, self.lmu.input, synapse=None)
            self.probe = nengo.Probe(self.lmu.output, label="logits")
        _configure_if_nengo_dl(self)

    def inputs(self, x):
        """Simulator input dict for sequences ``x`` ``(N, n_steps, input_d)``."""
        return self.lmu.inputs(x, input_node=self.inp)

    @property
    def layers(self):
        """The hybrid-spiking layers measured and deployed: the hidden layer."""
        return [self.lmu.hidden]

    @property
    def encoded_inputs(self):
        """Host nodes driving on-chip neurons every step: a precomputed memory."""
        return [self.lmu.memory] if self.lmu.memory_mode == "precomputed" else []

    def layer_probes(self):
        """Probes (added once) on the neurons of `layers`."""
        return [self.hidden_probe()]

    def hidden_probe(self):
        """Add (once) and return a probe of the hidden activities."""
        if getattr(self, "_hidden_probe", None) is None:
            with self:
                self._hidden_probe = nengo.Probe(
                    self.lmu.hidden.neurons, label="hidden"
                )
            _keep_history(self, self._hidden_probe)
        return self._hidden_probe

    score_steps = 1

    @property
    def fixed(self):
        """Objects NengoDL must not train: the LMU's memory."""
        return list(self.lmu.fixed)

    @staticmethod
    def scores(output):
        """The scores on the last step of each sequence ``(N, steps, classes)``."""
        return np.asarray(output)[:, -1, :]

    def predictions(self, output):
        """Classes from the scores on the last step of each sequence."""
        return np.argmax(self.scores(output), axis=-1)

    @staticmethod
    def targets(y):
        """Labels ``(N,)`` → NengoDL targets ``(N, 1, 1)``."""
        return np.asarray(y).reshape(-1, 1, 1)


def build_classifier(
    recipe, precision=None, memory=None, spiking=True, stimulus=None, gui=False,
    trained=None, latency=0,
):  # fmt: skip
    """Build the `LMUClassifier` of a model-zoo recipe (see ``models/lmu_quick.py``).

    Parameters
    ----------
    recipe : dict
        With ``network`` (kwargs of `LMU`), ``schedule`` (a schedule dict with an
        ``end`` precision or threshold) and ``seed``; optionally ``neuron``
        (``"hybrid"``, the default, or ``"sigma_delta"``: a
        ``SigmaDelta(nengo.RectifiedLinear())`` hidden layer at ``threshold``,
        default the schedule's ``end``).
    precision : float, optional
        Hidden precision (default: the schedule's final ``end`` precision);
        ignored for ``neuron="sigma_delta"``.
    memory : str or HybridSpiking, optional
        Override ``recipe["network"]["memory"]``.
    spiking : bool
        False builds the non-spiking LMU (ReLU rate neurons, same weights).
    stimulus : array_like or nengo.Process, optional
        Output of the input node.
    gui : bool
        Build for Nengo GUI: the step-by-step linear memory, restarted at each
        sequence, with test digits to play and displays (`ClassifierGui`).
    trained : LMUClassifier, optional
        With ``gui``: a trained network of the same recipe (e.g.
        ``FrozenNetwork.build``, precomputed memory) whose parameters the
        GUI network takes (`copy_lmu_parameters`).
    latency : int
        With ``gui``: steps by which the class scores arrive late (read from
        a chip), for the displayed classes.
    """
    if gui:
        memory, stimulus = "linear", None
    kwargs = dict(recipe["network"])
    if not spiking:
        kwargs["hidden_neurons"] = nengo.RectifiedLinear()
    elif recipe.get("neuron", "hybrid") == "sigma_delta":
        threshold = recipe.get("threshold", recipe["schedule"]["end"])
        kwargs["hidden_neurons"] = SigmaDelta(nengo.RectifiedLinear(), threshold)
    else:
        if precision is None:
            precision = recipe["schedule"]["end"]
        kwargs["hidden_neurons"] = hybrid_relu(precision=precision)
    if memory is not None:
        kwargs["memory"] = memory
    net = LMUClassifier(seed=recipe.get("seed", 0), stimulus=stimulus, **kwargs)
    if gui:
        if trained is not None:
            copy_lmu_parameters(trained, net)
        from nengo_hybrid.data import permutation, psmnist

        data = psmnist(**{**recipe["data"], "source": "embedded"})
        n_pixels = data.x_test.shape[1]
        order = permutation(n_pixels, data.permutation_seed)
        images = np.zeros((len(data.x_test), n_pixels), dtype=np.float64)
        images[:, order] = data.x_test[..., 0]  # back to row-major pixels
        ClassifierGui(
            net, data.x_test, data.y_test, images, order=order, latency=latency
        )
    return net


def copy_lmu_parameters(trained, net):
    """Give ``net`` the hidden-layer and readout parameters of ``trained``.

    Both are `LMUClassifier` networks of the same recipe, built with any
    memory form: a ``"precomputed"`` memory node carries ``[m, u]`` and one
    kernel ``[Wm | Wu]`` to the hidden layer, a ``"linear"`` one carries ``m``
    with ``Wu`` on a separate input connection. Copied: the hidden ensemble
    (encoders, gain, bias, neuron type with its precision and initial
    voltages), ``Wm``, ``Wu``, the recurrent ``Wh`` and the readout with its
    bias. The memory (``Ad``, ``Bd``) is fixed and equal in both.
    """
    a, b = trained.lmu, net.lmu
    shape = ("n_hidden", "order", "theta", "input_d", "output_d")
    if any(getattr(a, k) != getattr(b, k) for k in shape):
        raise ValidationError(
            f"the trained LMU ({', '.join(f'{k}={getattr(a, k)}' for k in shape)}) "
            "does not have the shape of this one "
            f"({', '.join(f'{k}={getattr(b, k)}' for k in shape)})",
            attr="trained",
        )

    def transform(conn):
        return np.asarray(conn.transform.init, dtype=np.float64)

    d = a.memory_d
    if a.memory_to_hidden is a.input_to_hidden:  # one [Wm | Wu] kernel
        kernel = transform(a.memory_to_hidden)
        w_memory, w_input = kernel[:, :d], kernel[:, d:]
    else:
        w_memory, w_input = transform(a.memory_to_hidden), transform(a.input_to_hidden)
    if b.memory_to_hidden is b.input_to_hidden:
        b.memory_to_hidden.transform = np.hstack([w_memory, w_input])
    else:
        b.memory_to_hidden.transform = w_memory
        b.input_to_hidden.transform = w_input
    b.hidden_to_hidden.transform = transform(a.hidden_to_hidden)
    b.readout.transform = transform(a.readout)
    b.readout_bias.transform = transform(a.readout_bias)
    for name in ("encoders", "normalize_encoders", "gain", "bias", "neuron_type"):
        setattr(b.hidden, name, getattr(a.hidden, name))
    b.hidden_neurons = a.hidden.neuron_type
    return net


def scaled_relu(precision, rate_scale):
    """A hybrid ReLU in natural units whose neurons fire ``rate_scale`` Hz per unit.

    ``HybridSpiking(RectifiedLinear(amplitude=s), amplitude=1/s)``: the output is
    the ReLU of the input, and each spike stands for ``1 / (s * precision * dt)``.
    """
    return HybridSpiking(
        nengo.RectifiedLinear(amplitude=rate_scale),
        precision=precision,
        amplitude=1.0 / rate_scale,
    )


#: the neuron types `DenseClassifier` builds its layers with
DENSE_NEURONS = ("hybrid", "sigma_delta")


class DenseClassifier(nengo.Network):
    """A static image classifier: input layer → hybrid dense layers → scores.

    With ``neuron="sigma_delta"`` the layers are `.SigmaDelta` neurons
    (Lava's stock Loihi 2 neuron) instead of `.HybridSpiking`: they send
    changes of their ReLU activation, take no synapse (the receiver's sum of
    deltas needs no filter) and export to lava-dl netx
    (`nengo_hybrid.hardware.netx`).

    Each image is held for ``presentation_steps`` steps; the class is the
    argmax of the scores averaged over the last ``score_steps`` of it
    (`scores`). Trained in NengoDL with one step per image at a rate-like
    precision and no synapse; deployed at the recipe's precision with a
    lowpass ``synapse`` on the hidden layers' inputs. It follows the classifier
    contract of `nengo_hybrid.tasks`.

    Parameters
    ----------
    n_hidden : sequence of int
        Hidden layer sizes.
    precision : float
        Precision of the hidden layers.
    input_precision : float
        Precision of the input layer (1: it sends 1-bit spikes from the host).
    input_rate, rate_scale : float
        Firing rate (Hz) per unit of pixel intensity, and per unit of hidden
        activation (`scaled_relu`).
    synapse : float or None
        Lowpass time constant on the hidden layers' inputs (hybrid neurons).
    presentation_steps, score_steps : int
        Steps per image, and the last steps whose scores count.
    n_inputs, n_classes : int
    stimulus : array_like or nengo.Process, optional
        Output of the input node (default zeros, fed by the simulator).
    seed : int
        Seed of the network and its initial weights.
    neuron : {"hybrid", "sigma_delta"}
        The layers' neuron type (`.HybridSpiking` or `.SigmaDelta`).
    threshold, input_threshold : float
        `.SigmaDelta` thresholds of the hidden and input layers (in units of
        the ReLU activation); ``neuron="sigma_delta"`` only.
    """

    def __init__(
        self,
        n_hidden=(128, 64),
        precision=1.0,
        input_precision=1.0,
        input_rate=200.0,
        rate_scale=100.0,
        synapse=None,
        presentation_steps=1,
        score_steps=1,
        n_inputs=784,
        n_classes=10,
        stimulus=None,
        seed=0,
        label="mnist_dense",
        neuron="hybrid",
        threshold=0.0,
        input_threshold=0.0,
    ):
        super().__init__(label=label, seed=seed)
        if neuron not in DENSE_NEURONS:
            raise ValidationError(
                f"neuron must be one of {sorted(DENSE_NEURONS)}, got {neuron!r}",
                attr="neuron",
                obj=self,
            )
        if neuron == "sigma_delta":
            hidden_type = SigmaDelta(nengo.RectifiedLinear(), threshold=threshold)
            input_type = SigmaDelta(nengo.RectifiedLinear(), threshold=input_threshold)
            synapse = None
        else:
            hidden_type = scaled_relu(precision, rate_scale)
            input_type = scaled_relu(input_precision, input_rate)
        self.presentation_steps = int(presentation_steps)
        self.score_steps = int(score_steps)
        rng = np.random.RandomState(seed)
        with self:
            output = np.zeros(n_inputs) if stimulus is None else stimulus
            self.inp = nengo.Node(output, size_out=n_inputs, label="image")
            self.input_layer = nengo.Ensemble(
                n_inputs, 1, neuron_type=input_type,
                gain=np.ones(n_inputs), bias=np.zeros(n_inputs), label="input",
            )  # fmt: skip
            nengo.Connection(self.inp, self.input_layer.neurons, synapse=None)
            pre, self.hidden = self.input_layer, []
            for i, n in enumerate(n_hidden):
                ens = nengo.Ensemble(
                    n, 1, neuron_type=hidden_type,
                    gain=np.ones(n), bias=np.zeros(n), label=f"hidden{i + 1}",
                )  # fmt: skip
                w = rng.normal(0, 1 / np.sqrt(pre.n_neurons), (n, pre.n_neurons))
                nengo.Connection(pre.neurons, ens.neurons, transform=w, synapse=synapse)
                self.hidden.append(ens)
                pre = ens
            self.output = nengo.Node(size_in=n_classes, label="scores")
            w = rng.normal(0, 1 / np.sqrt(pre.n_neurons), (n_classes, pre.n_neurons))
            nengo.Connection(pre.neurons, self.output, transform=w, synapse=None)
            self.probe = nengo.Probe(self.output, label="scores")
        _configure_if_nengo_dl(self)

    @property
    def layers(self):
        """The hidden layers (on the chip); the input layer runs on the host."""
        return list(self.hidden)

    encoded_inputs = ()
    #: not trained: the input layer turns pixels into spikes
    fixed = property(lambda self: [self.input_layer])

    def inputs(self, x):
        """Each image ``(N, n_inputs)`` held for ``presentation_steps``."""
        x = np.asarray(x, dtype=np.float32)
        return {self.inp: np.repeat(x[:, None, :], self.presentation_steps, axis=1)}

    def layer_probes(self):
        """Probes (added once) on the neurons of `layers`."""
        if getattr(self, "_layer_probes", None) is None:
            with self:
                self._layer_probes = [
                    nengo.Probe(e.neurons, label=e.label) for e in self.layers
                ]
            for probe in self._layer_probes:
                _keep_history(self, probe)
        return self._layer_probes

    @staticmethod
    def targets(y):
        """Labels ``(N,)`` → NengoDL targets ``(N, 1, 1)``."""
        return np.asarray(y).reshape(-1, 1, 1)

    def scores(self, output):
        """Scores averaged over the last ``score_steps`` of each presentation."""
        return np.asarray(output)[:, -self.score_steps :].mean(axis=1)

    def predictions(self, output):
        """Classes from the probe data ``(N, steps, n_classes)``."""
        return np.argmax(self.scores(output), axis=-1)


# ---------------------------------------------------------------- Nengo GUI
#
# What a recipe file shows in Nengo GUI (``mode="gui"`` only; the layout files
# ``models/*.py.cfg`` place the plots). Networks built for training and
# deployment never contain these objects.

#: rows per neuron in the spike-count raster: a step's count n lights the rows
#: "n >= 1", "n >= 2", "n >= 4", "n >= 8", "n >= 16" (its bits), then one empty row
GUI_COUNT_LEVELS = 5
#: neurons shown in the spike-count raster (evenly spaced over the layer)
GUI_RASTER_NEURONS = 12
#: memory coefficients shown in the memory plot
GUI_MEMORY_SHOWN = 32


class DigitPlayer(nengo.Process):
    """Plays test items one after another, ``n_steps`` steps each.

    Output ``[index, step]``: the test item playing and the step within it.
    The input (a slider in Nengo GUI) chooses an item: when its rounded value
    changes, that item plays next (after the current one ends), and the
    following items go on from there. It starts with item ``round(input)``.
    """

    n_items = IntParam("n_items", low=1)
    n_steps = IntParam("n_steps", low=1)

    def __init__(self, n_items, n_steps, **kwargs):
        super().__init__(default_size_in=1, default_size_out=2, **kwargs)
        self.n_items = n_items
        self.n_steps = n_steps

    def make_step(self, shape_in, shape_out, dt, rng, state=None):
        n_items, n_steps = self.n_items, self.n_steps
        played = {"index": 0, "request": None}

        def step(t, x):
            k = int(round(t / dt)) - 1
            s = k % n_steps
            if s == 0:
                request = int(np.clip(np.round(x[0]), 0, n_items - 1))
                if k == 0 or request != played["request"]:
                    played["index"] = request
                else:
                    played["index"] = (played["index"] + 1) % n_items
                played["request"] = request
            return np.array([played["index"], s], dtype=np.float64)

        return step


class _Play:
    """Node output: test item ``[index, step]`` of ``items`` (sequences or images)."""

    def __init__(self, items):
        self.items = np.asarray(items, dtype=np.float64)

    def __call__(self, t, x):
        index = int(round(x[0]))
        if self.items.ndim == 3:  # sequences: one step at a time
            return self.items[index, int(round(x[1]))]
        return self.items[index]


class _Image:
    """Node output: the image of the item playing; with ``order`` (the pixel
    order of a sequence), pixels not played yet are dimmed."""

    def __init__(self, images, order=None, dim=0.3):
        self.images = np.asarray(images, dtype=np.float64)
        self.order = order
        self.dim = dim

    def __call__(self, t, x):
        image = self.images[int(round(x[0]))]
        if self.order is None:
            return image
        shown = self.order[: int(round(x[1])) + 1]
        out = self.dim * image
        out[shown] = image[shown]
        return out


class _MemoryReset:
    """Node output: ``-A m[t-1]`` on the first step of a sequence, else zero.

    Added to the linear memory's own recurrence ``A m[t-1]``, it starts every
    sequence from ``m = 0``, as in training and deployment.
    """

    def __init__(self, A):
        self.A = np.asarray(A, dtype=np.float64)
        self.zeros = np.zeros(len(self.A))

    def __call__(self, t, x):
        return -(self.A @ x[:-1]) if int(round(x[-1])) == 0 else self.zeros


class _Copy:
    """Node output: its input (a plain function node, not a passthrough)."""

    def __call__(self, t, x):
        return x


class CountLevels(nengo.neurons.NeuronType):
    """Display neurons for Nengo GUI's spike raster: one spike when ``|J| >= 1``.

    Memoryless; used by `ClassifierGui` to draw multi-bit spike counts as rows
    (never trained or deployed).
    """

    spiking = True

    def step(self, dt, J, output):
        output[...] = (np.abs(J) >= 1 - 1e-9) / dt


def spike_count_scale(neuron_type, dt=0.001):
    """Factor from a `.HybridSpiking` ensemble's output to its spike counts."""
    return neuron_type.precision * dt / neuron_type.amplitude


def spike_count_raster(layer, n_shown=GUI_RASTER_NEURONS):
    """Display ensemble drawing the spike counts of ``layer`` as raster rows.

    Made in the current network. For each of ``n_shown`` evenly spaced neurons
    of ``layer`` (a `.HybridSpiking` ensemble) there are `GUI_COUNT_LEVELS` + 1
    rows of `CountLevels` neurons: in a step where the neuron emits ``n``
    spikes, row ``k`` spikes when ``|n| >= 2**k`` (so a count lights as many
    rows as it has bits), and the last row stays empty, separating neurons.
    For a `.SigmaDelta` layer, ``n`` is the message sent, in thresholds (row
    0: a message; 1e-3 for threshold 0).
    Nengo GUI's raster draws row 0 at the bottom: each neuron's bar grows up.

    Returns
    -------
    counts : nengo.Ensemble
    shown : ndarray
        Indices of the neurons shown, one group of rows each, in row order.
    """
    n = layer.n_neurons
    shown = np.unique(np.linspace(0, n - 1, min(n, n_shown)).round().astype(int))
    rows = GUI_COUNT_LEVELS + 1
    sigma_delta = isinstance(layer.neuron_type, SigmaDelta)
    if sigma_delta:  # rows: |delta| >= 2**k thresholds
        scale = 1 / (
            layer.neuron_type.amplitude * max(layer.neuron_type.threshold, 1e-3)
        )
    else:
        scale = spike_count_scale(layer.neuron_type)
    transform = np.zeros((len(shown) * rows, n))
    for j, i in enumerate(shown):
        for k in range(GUI_COUNT_LEVELS):
            transform[j * rows + k, i] = scale / 2**k
    counts = nengo.Ensemble(
        len(transform), 1, neuron_type=CountLevels(),
        gain=np.ones(len(transform)), bias=np.zeros(len(transform)),
        label=f"{layer.label} spike counts",
    )  # fmt: skip
    nengo.Connection(layer.neurons, counts.neurons, transform=transform, synapse=None)
    if sigma_delta:  # its output is the reconstruction: minus last step's, the delta
        nengo.Connection(layer.neurons, counts.neurons, transform=-transform, synapse=0)
    return counts, shown


class _Scoreboard:
    """Node output for Nengo GUI's HTMLView: label, class and tally of the digits.

    Input ``[scores (n_classes), index, step]``. An item's class is the argmax
    of its scores summed over its last ``score_steps`` steps (the classifier's
    rule); scores that arrive ``latency`` steps late (from a chip) are matched
    to the item and step they belong to. ``results`` lists ``(index, label,
    class)`` of every item played to its end.
    """

    def __init__(self, labels, n_steps, score_steps=1, latency=0):
        self.labels = np.asarray(labels)
        self.n_steps = int(n_steps)
        self.score_steps = int(score_steps)
        self.latency = int(latency)
        self.reset()

    def reset(self):
        import collections

        self.history = collections.deque(maxlen=self.latency + 1)
        self.summed = None
        self.results = []
        self.last_t = -np.inf
        self._nengo_html_ = ""

    def __call__(self, t, x):
        if t <= self.last_t:  # the simulation was reset
            self.reset()
        self.last_t = t
        scores = np.asarray(x[:-2], dtype=np.float64)
        index, step = int(round(x[-2])), int(round(x[-1]))
        self.history.append((index, step))
        if len(self.history) == self.history.maxlen:
            item, pos = self.history[0]  # what these scores belong to
            first = self.n_steps - self.score_steps
            if pos == first:
                self.summed = scores.copy()
            elif pos > first and self.summed is not None:
                self.summed += scores
            if pos == self.n_steps - 1 and self.summed is not None:
                self.results.append(
                    (item, int(self.labels[item]), int(np.argmax(self.summed)))
                )
                self.summed = None
        self._nengo_html_ = self.html(index, step, scores)

    def html(self, index, step, scores):
        """Digit, label, step; last class and tally; softmax bars of ``scores``."""
        label = int(self.labels[index])
        lines = [
            f"test digit <b>#{index}</b>, label <b>{label}</b> "
            f"<span style='color:#888'>(step {step + 1} of {self.n_steps})</span>"
        ]
        if self.results:
            item, truth, guess = self.results[-1]
            mark = (
                "<b style='color:#2a2'>&#10003;</b>"
                if guess == truth
                else "<b style='color:#c22'>&#10007;</b>"
            )
            correct = sum(r[1] == r[2] for r in self.results)
            lines.append(f"last #{item} (label {truth}): class <b>{guess}</b> {mark}")
            lines.append(f"<b>{correct}</b> of {len(self.results)} correct")
        else:
            lines.append("class: at the end of the digit")
        p = np.exp(scores - scores.max())
        p /= p.sum()
        bars = "".join(
            f"<rect x='{10 * c + 1}' y='{30 * (1 - v):.1f}' width='8' "
            f"height='{30 * v + 0.5:.1f}' fill='{'#2a2' if c == label else '#999'}'/>"
            f"<text x='{10 * c + 5}' y='39' font-size='8' text-anchor='middle'>{c}</text>"
            for c, v in enumerate(p)
        )
        return (
            "<div style='font:13px sans-serif;line-height:1.45;padding-top:1.8em'>"
            + "<br>".join(lines)
            + "<svg viewBox='0 0 100 40' width='100%' height='90'>"
            + bars
            + "</svg></div>"
        )


class ClassifierGui(nengo.Network):
    """Controls and displays for a classifier in Nengo GUI (``mode="gui"``).

    Added to ``net`` (a classifier of `nengo_hybrid.tasks`), whose input node
    then plays the test items: one after another, each for one sequence
    (``items[i]``, shape ``(n_steps, d)``) or for ``net.presentation_steps``
    steps (an image, ``items[i]`` of shape ``(d,)``).

    Parameters
    ----------
    net : LMUClassifier or DenseClassifier
    items : array
        Test sequences ``(N, n_steps, d)`` or images ``(N, d)``.
    labels : array
        ``(N,)`` true classes.
    images : array
        ``(N, n_pixels)`` images to display (row-major, square).
    order : array, optional
        Pixel order of the sequences: pixels not played yet are dimmed.
    latency : int
        Steps by which the class scores arrive late (read from a chip).
    n_shown : int
        Neurons shown in the spike-count raster.

    Attributes
    ----------
    choose : nengo.Node
        Slider: the test digit to play next.
    player : nengo.Node
        ``[index, step]`` (`DigitPlayer`).
    memory_reset : nengo.Node or None
        Restarts a linear LMU memory at each sequence (`_MemoryReset`).
    image : nengo.Ensemble
        The digit playing, one rate neuron per pixel (for an image plot).
    counts : nengo.Ensemble
        Spike counts of ``net.layers[0]`` as raster rows (`spike_count_raster`):
        for each shown neuron, rows lit by counts >= 1, 2, 4, 8, 16, one empty row.
    shown_neurons : ndarray
        The neurons of ``net.layers[0]`` in the raster, in row order.
    memory : nengo.Node or None
        The LMU memory's first `GUI_MEMORY_SHOWN` coefficients.
    scores : nengo.Node
        The class scores (the classifier's ``probe`` target).
    scoreboard : nengo.Node
        HTML: the digit's label, the class of the last digit, the tally, and
        the softmax of the scores with the true class in green.
    host_ensembles : list of nengo.Ensemble
        Display ensembles, to be kept off a chip.
    """

    def __init__(self, net, items, labels, images, order=None, latency=0,
                 n_shown=GUI_RASTER_NEURONS, label="digits and displays"):  # fmt: skip
        items = np.asarray(items)
        labels = np.asarray(labels)
        n_steps = items.shape[1] if items.ndim == 3 else int(net.presentation_steps)
        layer = net.layers[0]
        scores = net.probe.target
        n_classes = scores.size_out
        with net:
            super().__init__(label=label)
        net.gui = self
        with self:
            self.choose = nengo.Node([0.0], label="choose test digit")
            self.player = nengo.Node(
                DigitPlayer(len(labels), n_steps), size_in=1, label="test digit"
            )
            nengo.Connection(self.choose, self.player, synapse=None)
            net.inp.size_in = 2
            net.inp.output = _Play(items)
            nengo.Connection(self.player, net.inp, synapse=None)

            self.memory_reset = self.memory = None
            lmu = getattr(net, "lmu", None)
            if lmu is not None and lmu.memory_mode == "linear":
                A = np.kron(np.eye(lmu.input_d), lmu_matrices(lmu.order, lmu.theta)[0])
                d = lmu.memory_d
                # the same values as a function node: Nengo GUI 0.6 cannot draw
                # the recurrent connection of a passthrough node
                lmu.memory.output = _Copy()
                self.memory_reset = nengo.Node(
                    _MemoryReset(A), size_in=d + 1, size_out=d, label="memory reset"
                )
                nengo.Connection(lmu.memory, self.memory_reset[:d], synapse=0)
                nengo.Connection(self.player[1], self.memory_reset[d], synapse=None)
                nengo.Connection(self.memory_reset, lmu.memory, synapse=None)
                shown = min(d, GUI_MEMORY_SHOWN)
                self.memory = nengo.Node(
                    _Copy(), size_in=shown, size_out=shown, label="memory"
                )
                nengo.Connection(lmu.memory[:shown], self.memory, synapse=None)

            n_pixels = images.shape[1]
            self.image_values = nengo.Node(
                _Image(images, order), size_in=2, size_out=n_pixels, label="pixels"
            )
            nengo.Connection(self.player, self.image_values, synapse=None)
            self.image = nengo.Ensemble(
                n_pixels, 1, neuron_type=nengo.RectifiedLinear(),
                gain=np.ones(n_pixels), bias=np.zeros(n_pixels), label="digit",
            )  # fmt: skip
            nengo.Connection(self.image_values, self.image.neurons, synapse=None)

            self.counts, self.shown_neurons = spike_count_raster(layer, n_shown)
            self.scores = nengo.Node(
                _Copy(), size_in=n_classes, size_out=n_classes, label="class scores"
            )
            nengo.Connection(scores, self.scores, synapse=None)
            self.scoreboard = nengo.Node(
                _Scoreboard(labels, n_steps, net.score_steps, latency),
                size_in=n_classes + 2,
                size_out=0,
                label="class",
            )
            nengo.Connection(scores, self.scoreboard[:n_classes], synapse=None)
            nengo.Connection(self.player, self.scoreboard[n_classes:], synapse=None)
        self.host_ensembles = [self.image, self.counts]
        #: host encoder ensembles, when placed for a chip (`tasks.place_on_chip`)
        self.encoders = []

    @property
    def n_rows(self):
        """Rows of the spike-count raster."""
        return self.counts.n_neurons
