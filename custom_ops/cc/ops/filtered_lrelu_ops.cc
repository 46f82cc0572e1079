// Registration and shape functions of the fused filtered leaky ReLU ops. The output
// size and the limits come from the kernels' TensorFlow-free header, so the shape
// function, the CPU kernels and the CUDA kernels agree by construction.

#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "filtered_lrelu.h"

namespace afgan {

using ::tensorflow::Status;
using ::tensorflow::shape_inference::DimensionHandle;
using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

namespace {

// Width and height of a filter input ([taps] or [h, w]); unknown as -1.
Status FilterSize(InferenceContext* c, int index, const char* name, int64_t* fw, int64_t* fh) {
  ShapeHandle f = c->input(index);
  *fw = *fh = -1;
  if (!c->RankKnown(f)) return Status();
  const int rank = c->Rank(f);
  if (rank != 1 && rank != 2) {
    return ::tensorflow::errors::InvalidArgument(name,
                                                 " must be 1-D [taps] or 2-D [height, width], got rank ", rank);
  }
  *fw = c->Value(c->Dim(f, rank - 1));
  *fh = c->Value(c->Dim(f, 0));
  for (const int64_t taps : {*fw, *fh}) {
    if (taps == 0 || taps > AFGAN_FLRELU_MAX_TAPS) {
      return ::tensorflow::errors::InvalidArgument(name, " must have 1 to ",
                                                   AFGAN_FLRELU_MAX_TAPS, " taps per axis, got ", taps);
    }
  }
  return Status();
}

// The up, down and padding attributes of either op, checked.
Status ResamplingAttrs(InferenceContext* c, int* up, int* down, std::vector<int>* padding) {
  TF_RETURN_IF_ERROR(c->GetAttr("up", up));
  TF_RETURN_IF_ERROR(c->GetAttr("down", down));
  TF_RETURN_IF_ERROR(c->GetAttr("padding", padding));
  if (*up < 1 || *up > AFGAN_FLRELU_MAX_FACTOR) {
    return ::tensorflow::errors::InvalidArgument("up must be in [1, ", AFGAN_FLRELU_MAX_FACTOR, "], got ", *up);
  }
  if (*down < 1 || *down > AFGAN_FLRELU_MAX_FACTOR) {
    return ::tensorflow::errors::InvalidArgument("down must be in [1, ", AFGAN_FLRELU_MAX_FACTOR, "], got ", *down);
  }
  if (padding->size() != 4) {
    return ::tensorflow::errors::InvalidArgument("padding must be [x0, x1, y0, y1], got ", padding->size(),
                                                 " values");
  }
  return Status();
}

Status FilteredLreluShape(InferenceContext* c) {
  ShapeHandle x;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 4, &x));
  ShapeHandle b;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(3), 1, &b));
  DimensionHandle channels;
  TF_RETURN_IF_ERROR(c->Merge(c->Dim(x, 3), c->Dim(b, 0), &channels));
  int up, down;
  std::vector<int> padding;
  TF_RETURN_IF_ERROR(ResamplingAttrs(c, &up, &down, &padding));
  int64_t fu_w, fu_h, fd_w, fd_h;
  TF_RETURN_IF_ERROR(FilterSize(c, 1, "fu", &fu_w, &fu_h));
  TF_RETURN_IF_ERROR(FilterSize(c, 2, "fd", &fd_w, &fd_h));
  // Output length along one axis; unknown while an input size is unknown.
  auto out_dim = [&](int axis, int64_t fu, int64_t fd, int p0, int p1, DimensionHandle* out) -> Status {
    const int64_t in = c->Value(c->Dim(x, axis));
    if (in < 0 || fu < 0 || fd < 0) {
      *out = c->UnknownDim();
      return Status();
    }
    const int code = afgan_check_axis(in, up, down, p0, p1, fu, fd);
    if (code != AFGAN_FLRELU_OK) {
      return ::tensorflow::errors::InvalidArgument(afgan_flrelu_error(code), " (padding [", padding[0], ", ",
                                                   padding[1], ", ", padding[2], ", ", padding[3], "], up ", up,
                                                   ", input size ", in, ")");
    }
    *out = c->MakeDim(afgan_out_len(in, up, down, p0, p1, fu, fd));
    return Status();
  };
  DimensionHandle out_h, out_w;
  TF_RETURN_IF_ERROR(out_dim(1, fu_h, fd_h, padding[2], padding[3], &out_h));
  TF_RETURN_IF_ERROR(out_dim(2, fu_w, fd_w, padding[0], padding[1], &out_w));
  c->set_output(0, c->MakeShape({c->Dim(x, 0), out_h, out_w, channels}));
  bool write_signs;
  TF_RETURN_IF_ERROR(c->GetAttr("write_signs", &write_signs));
  if (!write_signs) {
    c->set_output(1, c->MakeShape({0}));
    return Status();
  }
  // Signs: [n, tmp_h, tmp_w, 4 * ceil(c / 16)] bytes (filtered_lrelu.h).
  auto tmp_dim = [&](int axis, int64_t fu, int p0, int p1) {
    const int64_t in = c->Value(c->Dim(x, axis));
    return in < 0 || fu < 0 ? c->UnknownDim() : c->MakeDim(afgan_tmp_len(in, up, p0, p1, fu));
  };
  const int64_t ch = c->Value(channels);
  c->set_output(1, c->MakeShape({c->Dim(x, 0), tmp_dim(1, fu_h, padding[2], padding[3]),
                                 tmp_dim(2, fu_w, padding[0], padding[1]),
                                 ch < 0 ? c->UnknownDim()
                                        : c->MakeDim(4 * ((ch + AFGAN_SIGN_CHANNELS - 1) / AFGAN_SIGN_CHANNELS))}));
  return Status();
}

// dx: [n, h, w, c] with h, w from the signs' intermediate size and c from dy.
Status FilteredLreluGradShape(InferenceContext* c) {
  ShapeHandle dy, signs;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 4, &dy));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 4, &signs));
  DimensionHandle n;
  TF_RETURN_IF_ERROR(c->Merge(c->Dim(dy, 0), c->Dim(signs, 0), &n));
  int up, down;
  std::vector<int> padding;
  TF_RETURN_IF_ERROR(ResamplingAttrs(c, &up, &down, &padding));
  int64_t fu_w, fu_h, fd_w, fd_h;
  TF_RETURN_IF_ERROR(FilterSize(c, 2, "fu", &fu_w, &fu_h));
  TF_RETURN_IF_ERROR(FilterSize(c, 3, "fd", &fd_w, &fd_h));
  auto in_dim = [&](int axis, int64_t fu, int p0, int p1) {
    const int64_t tmp = c->Value(c->Dim(signs, axis));
    const int64_t in = tmp < 0 || fu < 0 ? -1 : afgan_in_len_from_tmp(tmp, up, p0, p1, fu);
    return in < 0 ? c->UnknownDim() : c->MakeDim(in);
  };
  c->set_output(0, c->MakeShape({n, in_dim(1, fu_h, padding[2], padding[3]), in_dim(2, fu_w, padding[0], padding[1]),
                                 c->Dim(dy, 3)}));
  return Status();
}

}  // namespace

REGISTER_OP("AfganFilteredLrelu")
    .Input("x: float")
    .Input("fu: float")
    .Input("fd: float")
    .Input("b: float")
    .Output("y: float")
    .Output("signs: uint8")
    .Attr("up: int >= 1")
    .Attr("down: int >= 1")
    .Attr("padding: list(int)")
    .Attr("gain: float")
    .Attr("slope: float")
    .Attr("clamp: float")
    .Attr("flip_filter: bool")
    .Attr("write_signs: bool = false")
    .SetShapeFn(FilteredLreluShape)
    .Doc(R"doc(
Fused filtered leaky ReLU on NHWC images: bias, zero-insertion upsampling by `up`,
padding, FIR filter `fu`, leaky ReLU with `gain`/`slope`, clamp (`clamp` < 0 = none),
FIR filter `fd`, downsampling by `down`. Filters are 1-D (separable) or 2-D.
With `write_signs`, `signs` holds 2 bits per element of the intermediate (negative,
clamped; [N, tmp_h, tmp_w, 4 * ceil(C / 16)] bytes) for AfganFilteredLreluGrad; else
it is empty.
)doc");

REGISTER_OP("AfganFilteredLreluGrad")
    .Input("dy: float")
    .Input("signs: uint8")
    .Input("fu: float")
    .Input("fd: float")
    .Output("dx: float")
    .Attr("up: int >= 1")
    .Attr("down: int >= 1")
    .Attr("padding: list(int)")
    .Attr("gain: float")
    .Attr("slope: float")
    .Attr("clamp: float")
    .Attr("flip_filter: bool")
    .SetShapeFn(FilteredLreluGradShape)
    .Doc(R"doc(
Gradient of AfganFilteredLrelu with respect to x (the bias gradient is the sum of dx
over batch, height and width), from dy and the forward's `signs` (written with
write_signs): one transposed filtered pass, without x and without recomputing the
forward. x's height and width follow from the signs' intermediate size.
)doc");

}  // namespace afgan
