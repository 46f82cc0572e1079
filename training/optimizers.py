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
        index = self._get_variable_index(variable)
        m, v, t = self._momentums[index], self._velocities[index], self._steps[index]
        dtype = variable.dtype
        g = ops.cast(gradient, dtype)
        step = t + 1.0
        self.assign(t, step)
        step64 = ops.cast(step, 'float64')
        bias_correction1 = 1.0 - ops.power(ops.cast(self.beta_1, 'float64'), step64)
        bias_correction2_sqrt = ops.sqrt(1.0 - ops.power(ops.cast(self.beta_2, 'float64'), step64))
        step_size = ops.cast(ops.cast(learning_rate, 'float64') / bias_correction1, dtype)
        # PyTorch's float32 operations, in its order: exp_avg.lerp_(g, 1 - beta_1);
        # exp_avg_sq.mul_(beta_2).addcmul_(g, g, value=1 - beta_2) (a fused multiply-add);
        # denom = exp_avg_sq.sqrt() / bc2_sqrt + eps; param.addcdiv_(exp_avg, denom, value=-step_size).
        new_m = torch_lerp(m, g, 1.0 - self.beta_1)
        new_v = fused_multiply_add((1.0 - self.beta_2) * g, g, v * self.beta_2)
        self.assign(m, new_m)
        self.assign(v, new_v)
        denom = ops.sqrt(new_v) / ops.cast(bias_correction2_sqrt, dtype) + self.epsilon
        self.assign_sub(variable, (step_size * new_m) / denom)

    def get_config(self):
        return {**super().get_config(), 'beta_1': self.beta_1, 'beta_2': self.beta_2, 'epsilon': self.epsilon}


def fused_multiply_add(a, b, c):
    """a * b + c rounded once (a float32 product is exact in float64), as PyTorch's vectorised CPU kernels do."""
    if a.dtype == 'float64':
        return a * b + c
    wide = lambda x: ops.cast(x, 'float64')
    return ops.cast(wide(a) * wide(b) + wide(c), a.dtype)


def torch_lerp(start, end, weight):
    """``torch.lerp(start, end, weight)`` as PyTorch computes it on the CPU: weight < 0.5 gives
    start + weight (end - start), else end + (weight - 1) (end - start), each one fused multiply-add.
    ``weight`` is a Python number or a scalar tensor (cast to the dtype of ``start``)."""
    weight = ops.cast(weight, start.dtype)
    delta = end - start
    small = ops.abs(weight) < 0.5
    return ops.where(small, fused_multiply_add(ops.broadcast_to(weight, ops.shape(delta)), delta, start),
                     fused_multiply_add(ops.broadcast_to(weight - 1, ops.shape(delta)), delta, end))


def lazy_adam(learning_rate, reg_interval=None, beta_1=0.0, beta_2=0.99, epsilon=1e-8):
    """NVIDIA's optimizer of a module with lazy regularisation every ``reg_interval`` steps (None = none):
    ``mb_ratio = interval / (interval + 1)``, lr * mb_ratio, betas ** mb_ratio."""
    ratio = reg_interval / (reg_interval + 1) if reg_interval else 1.0
    return Adam(learning_rate=learning_rate * ratio, beta_1=beta_1 ** ratio, beta_2=beta_2 ** ratio, epsilon=epsilon)
