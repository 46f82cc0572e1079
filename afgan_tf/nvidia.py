"""Interoperability with NVIDIA's reference implementation (NVlabs/stylegan3).

Builds our Keras models from the reference's constructor keyword arguments and a
state dict (numpy arrays under the reference's parameter/buffer names).
"""

import numpy as np

from afgan_tf.layers import declared_shapes
from afgan_tf.networks import PRESETS, Discriminator, Generator, get_preset

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


def _check_declared(build, state_dict, what):
    """Builds ``build()`` with shapes only and compares them with the state dict's tensors, so that
    constructor arguments that claim a larger network than the file holds fail before any allocation."""
    try:
        with declared_shapes():
            probe = build()
    except TypeError as e:          # An unknown or malformed constructor argument.
        raise ValueError(f'{what}: the constructor arguments do not fit ({e})') from None
    declared = {k: v.shape for k, v in probe.reference_variables().items()}
    stored = {k: tuple(np.shape(v)) for k, v in state_dict.items()}
    missing = [k for k in declared if k not in stored]
    wrong = [f'{k} {list(stored[k])} (the arguments give {list(declared[k])})' for k in declared
             if k in stored and stored[k] != declared[k]]
    if missing or wrong:
        raise ValueError(f'state_dict does not fit the {what} its arguments describe: missing {missing[:5]}, '
                         f'shapes {wrong[:3]}')


def generator_from_state_dict(architecture, generator_kwargs, state_dict):
    """Builds a Generator from reference constructor kwargs (``G_kwargs``) and a state dict.

    Args:
        architecture: 'stylegan3-t', 'stylegan3-r' or 'stylegan2' (for StyleGAN3 the
            kwargs decide T vs R; the name only selects the network family).
        generator_kwargs: The reference Generator's keyword arguments
            (z_dim, c_dim, w_dim, img_resolution, img_channels, mapping_kwargs, ...).
        state_dict: ``{name: array}`` as the reference's ``G.state_dict()``.
    """
    preset = get_preset(architecture)
    kwargs = dict(generator_kwargs)
    kwargs.pop('class_name', None)
    # The reference's constructor arguments are final values: no preset defaults on top. Its own
    # defaults, where they differ from the preset's, come from the record.
    for key, value in preset.reference_defaults.items():
        kwargs.setdefault(key, value)
    kwargs['mapping_kwargs'] = {**preset.mapping_kwargs, **dict(kwargs.get('mapping_kwargs') or {})}
    _check_declared(lambda: Generator(architecture=architecture, **kwargs), state_dict, 'generator')
    G = Generator(architecture=architecture, **kwargs)
    return load_state_dict(G, state_dict)


def discriminator_from_state_dict(discriminator_kwargs, state_dict):
    """Builds a Discriminator from reference constructor kwargs (``D_kwargs``) and a state dict."""
    kwargs = dict(discriminator_kwargs)
    kwargs.pop('class_name', None)
    _check_declared(lambda: Discriminator(**kwargs), state_dict, 'discriminator')
    D = Discriminator(**kwargs)
    return load_state_dict(D, state_dict)


# ----------------------------------------------------------------------------
# Network pickles (NVIDIA's training snapshots and released models).

# Reference classes a network pickle may hold (top level and submodules).
GENERATOR_CLASSES = {'Generator'}
DISCRIMINATOR_CLASSES = {'Discriminator'}
AUGMENT_CLASSES = {'AugmentPipe'}
SUBMODULE_CLASSES = {
    'MappingNetwork', 'FullyConnectedLayer', 'SynthesisNetwork', 'SynthesisInput', 'SynthesisLayer',
    'SynthesisBlock', 'ToRGBLayer', 'Conv2dLayer', 'DiscriminatorBlock', 'DiscriminatorEpilogue',
    'MinibatchStdLayer',
}
_POSITIONAL = {'Generator': ('z_dim', 'c_dim', 'w_dim', 'img_resolution', 'img_channels'),
               'Discriminator': ('c_dim', 'img_resolution', 'img_channels')}


MAX_KWARGS_DEPTH = 16       # Nesting of constructor arguments (NVIDIA's go 2 deep).


def _plain(value, depth=0):
    """EasyDicts and OrderedDicts -> dicts, recursively; only plain values (ValueError for anything else, string
    keys only, at most MAX_KWARGS_DEPTH deep)."""
    if depth > MAX_KWARGS_DEPTH:
        raise ValueError(f'the constructor arguments in the pickle are nested more than {MAX_KWARGS_DEPTH} deep')
    if isinstance(value, dict):
        bad = [k for k in value if not isinstance(k, str)]
        if bad:
            raise ValueError(f'the constructor arguments in the pickle have a non-string key {bad[0]!r:.50}')
        return {k: _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v, depth + 1) for v in value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    raise ValueError(f'the constructor arguments in the pickle hold a {type(value).__name__}')


def _init_kwargs(obj):
    kwargs, args = obj.state.get('_init_kwargs') or {}, obj.state.get('_init_args') or ()
    if not isinstance(kwargs, dict) or not isinstance(args, (list, tuple)):
        raise ValueError(f'{obj.class_name} in the pickle has malformed constructor arguments')
    kwargs, args = _plain(dict(kwargs)), tuple(_plain(list(args)))
    names = _POSITIONAL.get(obj.class_name, ())
    if len(args) > len(names):
        raise ValueError(f'{obj.class_name} in the pickle has {len(args)} positional arguments; expected at most '
                         f'{len(names)}')
    kwargs.update(zip(names, args))
    kwargs.pop('class_name', None)
    return kwargs


def _architecture(G_obj, kwargs):
    """The preset of a pickled Generator: its synthesis submodules name the family (the record's
    ``reference_module``), its arguments (``reference_match``) the member of that family."""
    synthesis = (G_obj.state.get('_modules') or {}).get('synthesis')
    children = set((synthesis.state.get('_modules') or {}) if synthesis is not None else ())
    family = [p for p in PRESETS.values() if p.reference_module in children]
    if not family:
        raise ValueError('the pickled Generator matches no known architecture '
                         f'(synthesis submodules: {sorted(children)[:5]}; known: {sorted(PRESETS)})')

    def matches(preset):
        full = {**preset.reference_defaults, **kwargs}
        return any(all(full.get(k) == v for k, v in alternative.items()) for alternative in preset.reference_match)
    specific = [p for p in family if matches(p)]
    fallback = [p for p in family if not p.reference_match]
    chosen = specific or fallback
    if not chosen:
        raise ValueError(f'the pickled Generator matches none of {sorted(p.name for p in family)}')
    return chosen[0].name


def _check_classes(obj, allowed_top, what):
    from afgan_tf import torch_pickle
    if not isinstance(obj, torch_pickle.PersistentObject):
        raise ValueError(f'{what} in the pickle is a {type(obj).__name__}, not a pickled reference network')
    if obj.class_name not in allowed_top:
        raise ValueError(f'{what} in the pickle has the unknown class {obj.class_name!r} '
                         f'(supported: {sorted(allowed_top)})')
    unknown = sorted(torch_pickle.module_classes(obj) - allowed_top - SUBMODULE_CLASSES)
    if unknown:
        raise ValueError(f'{what} in the pickle contains unknown classes {unknown}')


def _read_source(source):
    """Bytes of a path (a regular file), an http(s) URL (downloaded) or a binary file object, at most
    ``torch_pickle.MAX_FILE_BYTES``."""
    from afgan_tf import safe_files, torch_pickle
    limit = torch_pickle.MAX_FILE_BYTES
    if hasattr(source, 'read'):
        data = safe_files.read_at_most(source, limit + 1)
    else:
        source = str(source)
        if source.startswith(('http://', 'https://')):
            import urllib.request
            with urllib.request.urlopen(source) as response:    # noqa: S310 (explicit user URL)
                data = safe_files.read_at_most(response, limit + 1)
        else:
            try:
                return safe_files.read_regular_file(source, limit)
            except safe_files.NotARegularFile as e:
                raise ValueError(str(e)) from None
    if len(data) > limit:
        raise ValueError(f'{source}: more than {limit} bytes, larger than any network pickle')
    return data


def load_network_pkl(source):
    """Loads a network pickle of NVIDIA's StyleGAN3/StyleGAN2 code without PyTorch or running its code.

    Args:
        source: Path, http(s) URL, or binary file object of a ``.pkl`` written by the
            reference code (training snapshot or released model).

    Returns:
        dict with the Keras models ``G``, ``D``, ``G_ema`` (those present), ``augment_p``
        (float or None), ``augment_kwargs`` (dict or None), ``training_set_kwargs``
        (dict or None), and ``architecture``.

    Raises:
        afgan_tf.torch_pickle.UnsafePickleError: the pickle references a global that is
            not on the allow-list (nothing was executed).
        pickle.UnpicklingError: truncated or corrupt file.
        ValueError: unknown classes or contents.
    """
    import io
    from afgan_tf import torch_pickle
    data = torch_pickle.load(io.BytesIO(_read_source(source)))
    if isinstance(data, tuple) and len(data) == 3:
        raise ValueError('this is a legacy TensorFlow (StyleGAN/StyleGAN2 TF) pickle, which is not supported; '
                         'convert it with NVIDIA\'s legacy.py first')
    if not isinstance(data, dict) or not any(k in data for k in ('G', 'D', 'G_ema')):
        raise ValueError(f'not a network pickle: expected a dict with G / D / G_ema, got {type(data).__name__}')
    out = {'architecture': None}
    for key in ('G', 'G_ema'):
        if data.get(key) is not None:
            _check_classes(data[key], GENERATOR_CLASSES, key)
            kwargs = _init_kwargs(data[key])
            out['architecture'] = _architecture(data[key], kwargs)
            out[key] = generator_from_state_dict(out['architecture'], kwargs,
                                                 torch_pickle.module_state_dict(data[key]))
    if data.get('D') is not None:
        _check_classes(data['D'], DISCRIMINATOR_CLASSES, 'D')
        out['D'] = discriminator_from_state_dict(_init_kwargs(data['D']), torch_pickle.module_state_dict(data['D']))
    out['augment_p'] = out['augment_kwargs'] = None
    if data.get('augment_pipe') is not None:
        _check_classes(data['augment_pipe'], AUGMENT_CLASSES, 'augment_pipe')
        pipe_state = torch_pickle.module_state_dict(data['augment_pipe'])
        out['augment_p'] = float(np.asarray(pipe_state['p'])) if 'p' in pipe_state else None
        out['augment_kwargs'] = _init_kwargs(data['augment_pipe'])
    tsk = data.get('training_set_kwargs')
    out['training_set_kwargs'] = _plain(dict(tsk)) if tsk is not None else None
    return out
