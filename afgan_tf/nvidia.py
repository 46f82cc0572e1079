"""Interoperability with NVIDIA's reference implementation (NVlabs/stylegan3).

Builds our Keras models from the reference's constructor keyword arguments and a
state dict (numpy arrays under the reference's parameter/buffer names).
"""

import numpy as np

from afgan_tf.networks import Discriminator, Generator

# Reference buffers that our layers derive from their configuration instead of storing.
_DERIVED_BUFFERS = ('up_filter', 'down_filter', 'resample_filter', 'transform')


def load_state_dict(model, state_dict, strict=True):
    """Assigns reference-named numpy arrays to ``model.reference_variables()``.

    With ``strict``, every variable must be present and every array must be used,
    except the buffers our layers derive from their configuration (designed filters,
    the input transform); those are checked against our own values instead.
    """
    targets = model.reference_variables()
    state_dict = {k: np.asarray(v) for k, v in state_dict.items()}
    missing = [k for k in targets if k not in state_dict]
    unexpected = [k for k in state_dict if k not in targets and k.rsplit('.', 1)[-1] not in _DERIVED_BUFFERS]
    if strict and (missing or unexpected):
        raise ValueError(f'state_dict does not fit {model.name}: missing {missing[:8]}, unexpected {unexpected[:8]}')
    for key, var in targets.items():
        if key not in state_dict:
            continue
        value = state_dict[key].astype(np.float32)
        if tuple(value.shape) != tuple(var.shape):
            raise ValueError(f'state_dict[{key!r}] has shape {list(value.shape)}, expected {list(var.shape)}')
        var.assign(value)
    _check_derived_filters(model, state_dict)
    return model


def _check_derived_filters(model, state_dict):
    """Verifies stored filter buffers against the ones our construction logic designs."""
    if not hasattr(model, 'synthesis') or not hasattr(model.synthesis, 'layer_names'):
        return
    for name in model.synthesis.layer_names:
        layer = getattr(model.synthesis, name)
        for attr in ('up_filter', 'down_filter'):
            stored = state_dict.get(f'synthesis.{name}.{attr}')
            ours = getattr(layer, attr)
            if stored is None or stored.size == 0:
                continue
            if ours is None or ours.shape != stored.shape or np.max(np.abs(ours - stored)) > 1e-5:
                raise ValueError(f'synthesis.{name}.{attr} in the state dict differs from the filter designed from '
                                 'the generator arguments: the arguments do not describe this network')


def state_dict(model):
    """Returns ``{reference name: numpy array}`` of a model, including derived filter buffers."""
    out = {k: v.numpy() for k, v in model.reference_variables().items()}
    if hasattr(model, 'synthesis') and hasattr(model.synthesis, 'layer_names'):
        out['synthesis.input.transform'] = np.eye(3, dtype=np.float32)
        for name in model.synthesis.layer_names:
            layer = getattr(model.synthesis, name)
            for attr in ('up_filter', 'down_filter'):
                if getattr(layer, attr) is not None:
                    out[f'synthesis.{name}.{attr}'] = getattr(layer, attr)
    return out


def generator_from_state_dict(architecture, generator_kwargs, state_dict):
    """Builds a Generator from reference constructor kwargs (``G_kwargs``) and a state dict.

    Args:
        architecture: 'stylegan3-t', 'stylegan3-r' or 'stylegan2' (for StyleGAN3 the
            kwargs decide T vs R; the name only selects the network family).
        generator_kwargs: The reference Generator's keyword arguments
            (z_dim, c_dim, w_dim, img_resolution, img_channels, mapping_kwargs, ...).
        state_dict: ``{name: array}`` as the reference's ``G.state_dict()``.
    """
    kwargs = dict(generator_kwargs)
    kwargs.pop('class_name', None)
    # The reference's constructor arguments are final values: no preset defaults on top.
    # Reference defaults that differ from our presets are spelled out here.
    if architecture.startswith('stylegan3'):
        kwargs.setdefault('channel_base', 32768)
        kwargs.setdefault('channel_max', 512)
        kwargs.setdefault('conv_kernel', 3)
        kwargs.setdefault('use_radial_filters', False)
    kwargs['mapping_kwargs'] = {'num_layers': 2 if architecture.startswith('stylegan3') else 8,
                                **dict(kwargs.get('mapping_kwargs') or {})}
    G = Generator(architecture=architecture, **kwargs)
    return load_state_dict(G, state_dict)


def discriminator_from_state_dict(discriminator_kwargs, state_dict):
    """Builds a Discriminator from reference constructor kwargs (``D_kwargs``) and a state dict."""
    kwargs = dict(discriminator_kwargs)
    kwargs.pop('class_name', None)
    D = Discriminator(**kwargs)
    return load_state_dict(D, state_dict)
