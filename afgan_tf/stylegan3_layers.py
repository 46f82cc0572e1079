"""Construction logic of the StyleGAN3 synthesis network as plain data.

``stylegan3_layer_specs`` computes, from the network's hyperparameters, every
per-layer quantity of the paper's flexible layer specification (Section 3.2 and
Appendix F): cutoffs and minimum stopbands on a geometric progression, sampling
rates, transition half-widths, sizes with margins, channel counts, up/down factors,
filter taps and padding. The Keras layers are built from this table, and tests
compare it field by field with the reference implementation's.
"""

import numpy as np


def stylegan3_layer_specs(
    img_resolution,                 # Output image resolution.
    img_channels,                   # Number of output color channels.
    channel_base=32768,             # Overall multiplier for the number of channels.
    channel_max=512,                # Maximum number of channels in any layer.
    num_layers=14,                  # Number of layers, excluding Fourier features and ToRGB.
    num_critical=2,                 # Number of critically sampled layers at the end.
    first_cutoff=2,                 # Cutoff frequency of the first layer (f_{c,0}).
    first_stopband=2 ** 2.1,        # Minimum stopband of the first layer (f_{t,0}).
    last_stopband_rel=2 ** 0.3,     # Minimum stopband of the last layer, relative to its cutoff.
    margin_size=10,                 # Number of additional pixels outside the image.
    conv_kernel=3,                  # Convolution kernel size (ToRGB always uses 1).
    filter_size=6,                  # Low-pass filter size relative to the lower rate when resampling.
    lrelu_upsampling=2,             # Relative sampling rate of the leaky ReLU.
    use_radial_filters=False,       # Radially symmetric downsampling filters (StyleGAN3-R).
    conv_clamp=256,                 # Clamp of the layer outputs, None = no clamping.
):
    """Returns ``{'input': {...}, 'num_ws': int, 'layers': [{...}, ...]}``.

    Layer dicts hold: name, is_torgb, is_critically_sampled, in/out_channels,
    in/out_size ([w, h]), in/out/tmp_sampling_rate, in/out_cutoff,
    in/out_half_width, conv_kernel, up/down_factor, up/down_taps, down_radial,
    padding ([x0, x1, y0, y1]) and conv_clamp.
    """
    if num_layers <= num_critical:
        raise ValueError(f'num_layers ({num_layers}) must exceed num_critical ({num_critical})')
    last_cutoff = img_resolution / 2
    last_stopband = last_cutoff * last_stopband_rel
    exponents = np.minimum(np.arange(num_layers + 1) / (num_layers - num_critical), 1)
    cutoffs = first_cutoff * (last_cutoff / first_cutoff) ** exponents
    stopbands = first_stopband * (last_stopband / first_stopband) ** exponents
    sampling_rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, img_resolution))))
    half_widths = np.maximum(stopbands, sampling_rates / 2) - cutoffs
    sizes = sampling_rates + margin_size * 2
    sizes[-2:] = img_resolution
    channels = np.rint(np.minimum((channel_base / 2) / cutoffs, channel_max))
    channels[-1] = img_channels

    layers = []
    for idx in range(num_layers + 1):
        prev = max(idx - 1, 0)
        is_torgb = idx == num_layers
        is_critical = idx >= num_layers - num_critical
        in_rate, out_rate = int(sampling_rates[prev]), int(sampling_rates[idx])
        in_size, out_size = int(sizes[prev]), int(sizes[idx])
        kernel = 1 if is_torgb else conv_kernel
        tmp_rate = max(in_rate, out_rate) * (1 if is_torgb else lrelu_upsampling)
        up = int(np.rint(tmp_rate / in_rate))
        down = int(np.rint(tmp_rate / out_rate))
        if in_rate * up != tmp_rate or out_rate * down != tmp_rate:
            raise ValueError(f'layer {idx}: sampling rates {in_rate} -> {tmp_rate} -> {out_rate} are not integer ratios')
        up_taps = filter_size * up if up > 1 and not is_torgb else 1
        down_taps = filter_size * down if down > 1 and not is_torgb else 1
        # Padding: desired pre-downsampling size minus the upsampled input size plus
        # what the filters shave off, split to keep the symmetric sample grid (App. C.3).
        pad_total = (out_size - 1) * down + 1 - (in_size + kernel - 1) * up + up_taps + down_taps - 2
        pad_lo = (pad_total + up) // 2
        pad_hi = pad_total - pad_lo
        out_channels = int(channels[idx])
        layers.append(dict(
            name=f'L{idx}_{out_size}_{out_channels}',
            is_torgb=bool(is_torgb), is_critically_sampled=bool(is_critical),
            in_channels=int(channels[prev]), out_channels=out_channels,
            in_size=[in_size, in_size], out_size=[out_size, out_size],
            in_sampling_rate=float(in_rate), out_sampling_rate=float(out_rate), tmp_sampling_rate=float(tmp_rate),
            in_cutoff=float(cutoffs[prev]), out_cutoff=float(cutoffs[idx]),
            in_half_width=float(half_widths[prev]), out_half_width=float(half_widths[idx]),
            conv_kernel=kernel, up_factor=up, down_factor=down, up_taps=up_taps, down_taps=down_taps,
            down_radial=bool(use_radial_filters and not is_critical),
            padding=[int(pad_lo), int(pad_hi), int(pad_lo), int(pad_hi)],
            conv_clamp=conv_clamp,
        ))
    return dict(
        input=dict(channels=int(channels[0]), size=[int(sizes[0]), int(sizes[0])],
                   sampling_rate=float(sampling_rates[0]), bandwidth=float(cutoffs[0])),
        num_ws=num_layers + 2,
        layers=layers,
    )
