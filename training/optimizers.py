"""The optimizer of NVIDIA's training: ``torch.optim.Adam``, as a Keras optimizer.

Keras' built-in Adam differs from PyTorch's in two ways that change a StyleGAN run:

* it adds epsilon to the *uncorrected* sqrt(v), which makes the effective epsilon
  1e-8 / sqrt(1 - beta2^t); PyTorch adds it after the bias correction;
* it has one step count for all variables (``iterations``), where PyTorch counts per parameter,
  so a parameter that a phase leaves without a gradient (D's output bias in the R1 phase) falls one
  step behind and its bias correction differs from then on.

``Adam`` here is PyTorch's update (torch 2.x ``_single_tensor_adam``, ``amsgrad`` off, no weight
decay): per variable ``t += 1``, ``m = lerp(m, g, 1 - beta_1)``, ``v = beta_2 v + (1 - beta_2) g^2``,
``var -= lr / (1 - beta_1^t) * m / (sqrt(v) / sqrt(1 - beta_2^t) + eps)``, the bias corrections in
float64 as PyTorch computes them in Python. Variables left out of ``apply`` keep their moments and
their step count, as PyTorch skips parameters whose ``.grad`` is None.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import ops


@keras.saving.register_keras_serializable(package='afgan_tf')
class Adam(keras.optimizers.Optimizer):
    """PyTorch's Adam (see the module docstring)."""

    def __init__(self,
                 learning_rate=0.001,       # lr.
                 beta_1=0.9,                # Decay of the first moment.
                 beta_2=0.999,              # Decay of the second moment.
                 epsilon=1e-8,              # Added to the bias-corrected sqrt(v).
                 name='adam',
                 **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        for key, value in (('beta_1', beta_1), ('beta_2', beta_2)):
            if not 0 <= value < 1:
                raise ValueError(f'{key} must be in [0, 1), got {value!r}')
        if not epsilon >= 0:
            raise ValueError(f'epsilon must be >= 0, got {epsilon!r}')
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._momentums, self._velocities = self.add_optimizer_variables(var_list, ['momentum', 'velocity'])
        # PyTorch's per-parameter step count (float32 counts exactly to 2^24 steps; beyond that the bias
        # corrections are 1 to float precision).
        self._steps = [self.add_variable(shape=(), initializer='zeros', dtype='float32', name=f'step_{v.name}')
                       for v in var_list]

    def update_step(self, gradient, variable, learning_rate):
        self._update_group([gradient], [variable], learning_rate)

    def _distributed_tf_update_step(self, distribution, grads_and_vars, learning_rate):
        # One grouped update per device (not one per variable): the same elementwise float32 and float64
        # operations on the concatenated tensors, so a step traces and runs about 6x fewer ops. Under a
        # strategy the gradients arrive all-reduced; every local copy of the variables gets the update.
        local = distribution.experimental_local_results
        grads, variables = zip(*grads_and_vars)
        per_device = list(zip(*[local(v) for v in variables]))
        grads_per_device = list(zip(*[local(g) for g in grads]))
        rates = local(learning_rate)
        for i, (device_vars, device_grads) in enumerate(zip(per_device, grads_per_device)):
            with tf.device(device_vars[0].device):
                lr = rates[i] if len(rates) == len(per_device) else learning_rate
                self._update_group(device_grads, device_vars, lr, device=i)

    def _update_group(self, grads, variables, learning_rate, device=0):
        """PyTorch's update of each variable (``device``: which local copy of the optimizer state)."""
        strategy = tf.distribute.get_strategy()
        local = lambda x: strategy.experimental_local_results(x.value if isinstance(x, keras.Variable) else x)[device]
        groups = {}
        for g, var in zip(grads, variables):
            groups.setdefault(tf.as_dtype(var.dtype), []).append((g, var))
        for dtype, pairs in groups.items():
            index = [self._get_variable_index(var) for _, var in pairs]
            moments = [local(self._momentums[i]) for i in index]
            velocities = [local(self._velocities[i]) for i in index]
            steps = [local(self._steps[i]) for i in index]
            sizes = [int(np.prod(var.shape)) for _, var in pairs]
            owner = tf.constant(np.repeat(np.arange(len(sizes), dtype=np.int32), sizes))   # Variable of each element.
            g, m, v = (tf.cast(flat_concat(xs), dtype) for xs in ([g for g, _ in pairs], moments, velocities))
            step = tf.stack([tf.convert_to_tensor(t) for t in steps]) + 1.0
            for t, value in zip(steps, tf.unstack(step)):
                t.assign(value)
            step64 = tf.cast(step, tf.float64)
            bias_correction1 = 1.0 - tf.pow(tf.constant(self.beta_1, tf.float64), step64)
            bias_correction2_sqrt = tf.sqrt(1.0 - tf.pow(tf.constant(self.beta_2, tf.float64), step64))
            step_size = tf.cast(tf.cast(learning_rate, tf.float64) / bias_correction1, dtype)
            # PyTorch's operations, in its order: exp_avg.lerp_(g, 1 - beta_1);
            # exp_avg_sq.mul_(beta_2).addcmul_(g, g, value=1 - beta_2) (a fused multiply-add);
            # denom = exp_avg_sq.sqrt() / bc2_sqrt + eps; param.addcdiv_(exp_avg, denom, value=-step_size).
            new_m = torch_lerp(m, g, 1.0 - self.beta_1)
            new_v = fused_multiply_add((1.0 - self.beta_2) * g, g, v * self.beta_2)
            # Per-variable factors spread over the elements with a gather (tf.repeat with sizes builds a
            # boolean mask and a tile: 5% of the demo step).
            denom = tf.sqrt(new_v) / tf.gather(tf.cast(bias_correction2_sqrt, dtype), owner) + self.epsilon
            update = (tf.gather(step_size, owner) * new_m) / denom
            assign_parts(new_m, moments)
            assign_parts(new_v, velocities)
            assign_parts(update, [var for _, var in pairs], 'assign_sub')

    def get_config(self):
        return {**super().get_config(), 'beta_1': self.beta_1, 'beta_2': self.beta_2, 'epsilon': self.epsilon}


def flat_concat(tensors):
    """The tensors (or variables) flattened and concatenated into one vector."""
    return tf.concat([tf.reshape(tf.convert_to_tensor(x), [-1]) for x in tensors], 0)


def assign_parts(flat, variables, method='assign'):
    """Calls ``variable.<method>`` with each variable's consecutive part of ``flat`` (flat_concat's
    layout), reshaped to the variable."""
    sizes = [int(np.prod(v.shape)) for v in variables]
    for part, variable in zip(tf.split(flat, sizes), variables):
        getattr(variable, method)(tf.reshape(part, variable.shape))


def fused_multiply_add(a, b, c):
    """a * b + c rounded once (a float32 product is exact in float64), as PyTorch's vectorised CPU kernels do."""
    if a.dtype == 'float64':
        return a * b + c
    wide = lambda x: ops.cast(x, 'float64')
    return ops.cast(wide(a) * wide(b) + wide(c), a.dtype)


def torch_lerp(start, end, weight):
    """``torch.lerp(start, end, weight)`` as PyTorch computes it on the CPU: weight < 0.5 gives
    start + weight (end - start), else end + (weight - 1) (end - start), each one fused multiply-add.
    ``weight`` is a Python number (the branch is chosen while tracing) or a scalar tensor (one branch
    computed, chosen by ``tf.cond``)."""
    delta = end - start
    if isinstance(weight, (int, float)):
        weight = tf.as_dtype(start.dtype).as_numpy_dtype(weight)       # Rounded to the dtype first, as a tensor.
        if abs(weight) < 0.5:
            return fused_multiply_add(ops.cast(weight, start.dtype), delta, start)
        return fused_multiply_add(ops.cast(weight - weight.dtype.type(1), start.dtype), delta, end)
    weight = ops.cast(weight, start.dtype)
    return tf.cond(ops.abs(weight) < 0.5, lambda: fused_multiply_add(weight, delta, start),
                   lambda: fused_multiply_add(weight - 1, delta, end))


def lazy_adam(learning_rate, reg_interval=None, beta_1=0.0, beta_2=0.99, epsilon=1e-8):
    """NVIDIA's optimizer of a module with lazy regularisation every ``reg_interval`` steps (None = none):
    ``mb_ratio = interval / (interval + 1)``, lr * mb_ratio, betas ** mb_ratio."""
    ratio = reg_interval / (reg_interval + 1) if reg_interval else 1.0
    return Adam(learning_rate=learning_rate * ratio, beta_1=beta_1 ** ratio, beta_2=beta_2 ** ratio, epsilon=epsilon)
