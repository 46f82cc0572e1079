"""afgan_tf.training.optimizers: PyTorch's Adam as a Keras optimizer, and NVIDIA's lazy-regularisation settings."""

import numpy as np
import pytest
import tensorflow as tf
import keras

from afgan_tf.training.optimizers import Adam, lazy_adam


def torch_adam_reference(params, grads_per_step, lr, beta1, beta2, eps):
    """torch.optim.Adam (single-tensor, no amsgrad) in float64; a None gradient skips that parameter."""
    params = [np.asarray(p, np.float64).copy() for p in params]
    state = [dict(step=0, m=np.zeros_like(p), v=np.zeros_like(p)) for p in params]
    for grads in grads_per_step:
        for p, g, s in zip(params, grads, state):
            if g is None:
                continue
            s['step'] += 1
            s['m'] = s['m'] + (g - s['m']) * (1 - beta1)
            s['v'] = s['v'] * beta2 + (1 - beta2) * g * g
            denom = np.sqrt(s['v']) / np.sqrt(1 - beta2 ** s['step']) + eps
            p -= lr / (1 - beta1 ** s['step']) * s['m'] / denom
    return params, state


def run(optimizer, params, grads_per_step):
    variables = [tf.Variable(np.asarray(p, np.float32)) for p in params]
    optimizer.build(variables)
    for grads in grads_per_step:
        pairs = [(tf.constant(g, tf.float32), v) for g, v in zip(grads, variables) if g is not None]
        optimizer.apply(*zip(*pairs))
    return [v.numpy() for v in variables]


def _case(seed=0):
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(6), rng.standard_normal(3)]
    # Tiny gradients make epsilon matter (NVIDIA's early steps have many), and the second
    # parameter has no gradient at step 1 (as D's output bias in the R1 phase).
    grads = [[rng.standard_normal(6) * 1e-6, rng.standard_normal(3) * 1e-6],
             [rng.standard_normal(6) * 1e-3, None],
             [rng.standard_normal(6) * 1e-7, rng.standard_normal(3) * 1e-2],
             [rng.standard_normal(6), rng.standard_normal(3) * 1e-8]]
    grads = [[None if g is None else g.astype(np.float32).astype(np.float64) for g in step] for step in grads]
    return params, grads


def relative_update_error(ours, expected, initial):
    return max(np.linalg.norm(o - e) / np.linalg.norm(e - i) for o, e, i in zip(ours, expected, initial))


@pytest.mark.parametrize('beta1', [0.0, 0.9])
def test_adam_is_pytorchs_adam(beta1):
    params, grads = _case()
    lr, beta2, eps = 0.002 * 16 / 17, 0.99 ** (16 / 17), 1e-8
    expected, _ = torch_adam_reference(params, grads, lr, beta1, beta2, eps)
    ours = run(Adam(learning_rate=lr, beta_1=beta1, beta_2=beta2, epsilon=eps), params, grads)
    assert relative_update_error(ours, expected, params) < 1e-4          # float32 rounding of the weights.
    # Keras' built-in Adam (epsilon on the uncorrected sqrt(v), one step count) is not: the test can fail.
    keras_adam = run(keras.optimizers.Adam(learning_rate=lr, beta_1=beta1, beta_2=beta2, epsilon=eps), params, grads)
    assert relative_update_error(keras_adam, expected, params) > 1e-2


def test_variables_without_gradient_keep_their_moments_and_step_count():
    params, grads = _case(1)
    opt = Adam(learning_rate=0.01, beta_1=0.0, beta_2=0.99)
    run(opt, params, grads[:2])
    _, state = torch_adam_reference(params, grads[:2], 0.01, 0.0, 0.99, 1e-8)
    assert [float(s.numpy()) for s in opt._steps] == [2.0, 1.0] == [s['step'] for s in state]
    assert np.allclose(opt._velocities[1].numpy(), state[1]['v'], rtol=1e-6, atol=0)
    assert int(opt.iterations.numpy()) == 2


def test_lazy_adam_is_nvidias_lazy_regularisation_setting():
    opt = lazy_adam(0.002, 16)
    assert float(opt.learning_rate.numpy()) == pytest.approx(0.002 * 16 / 17)
    assert opt.beta_1 == 0.0 and opt.beta_2 == pytest.approx(0.99 ** (16 / 17)) and opt.epsilon == 1e-8
    plain = lazy_adam(0.0025)
    assert float(plain.learning_rate.numpy()) == pytest.approx(0.0025) and plain.beta_2 == 0.99
    assert isinstance(keras.optimizers.deserialize(keras.optimizers.serialize(opt)), Adam)
    with pytest.raises(ValueError, match='beta_2'):
        Adam(beta_2=1.0)


def test_adam_state_is_checkpointed(tmp_path):
    params, grads = _case(2)
    a = Adam(learning_rate=0.01, beta_1=0.0, beta_2=0.99)
    variables = [tf.Variable(np.asarray(p, np.float32)) for p in params]
    a.build(variables)
    a.apply([tf.constant(grads[0][0], tf.float32)], [variables[0]])
    path = tf.train.Checkpoint(opt=a, vars=variables).save(tmp_path / 'ckpt')
    b = Adam(learning_rate=0.01, beta_1=0.0, beta_2=0.99)
    others = [tf.Variable(np.zeros_like(p, np.float32)) for p in params]
    b.build(others)
    tf.train.Checkpoint(opt=b, vars=others).restore(path).assert_existing_objects_matched()
    assert [float(s.numpy()) for s in b._steps] == [1.0, 0.0]
    assert np.array_equal(b._velocities[0].numpy(), a._velocities[0].numpy())
