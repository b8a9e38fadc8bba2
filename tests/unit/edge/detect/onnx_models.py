"""Small ONNX models built with onnx.helper for detector and age/gender tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def constant_output_model(path: Path, output: np.ndarray, *, size: int = 64) -> Path:
    """A model with input images [1, 3, size, size] whose output is the constant `output`."""
    inp = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])
    out = helper.make_tensor_value_info("output", TensorProto.FLOAT, list(output.shape))
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["m"], keepdims=0),
        helper.make_node("Mul", ["m", "zero"], ["z"]),
        helper.make_node("Add", ["z", "const"], ["output"]),
    ]
    inits = [
        numpy_helper.from_array(np.zeros((), np.float32), "zero"),
        numpy_helper.from_array(output.astype(np.float32), "const"),
    ]
    graph = helper.make_graph(nodes, "const", [inp], [out], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def age_gender_model(path: Path, *, outputs: int = 3) -> Path:
    """Contract model: brightness b = mean/255 gives (female=b, male=1-b, age/100=0.8*b)."""
    inp = helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 96, 96])
    out = helper.make_tensor_value_info("fc1", TensorProto.FLOAT, [1, outputs])
    nodes = [
        helper.make_node("ReduceMean", ["data"], ["m"], keepdims=0),
        helper.make_node("Div", ["m", "c255"], ["b"]),
        helper.make_node("Sub", ["one", "b"], ["nb"]),
        helper.make_node("Mul", ["b", "c08"], ["age"]),
        helper.make_node("Reshape", ["b", "shape1"], ["b1"]),
        helper.make_node("Reshape", ["nb", "shape1"], ["nb1"]),
        helper.make_node("Reshape", ["age", "shape1"], ["age1"]),
        helper.make_node("Concat", ["b1", "nb1", "age1"][:outputs], ["cat"], axis=0),
        helper.make_node("Reshape", ["cat", "shape2"], ["fc1"]),
    ]
    inits = [
        numpy_helper.from_array(np.array(255.0, np.float32), "c255"),
        numpy_helper.from_array(np.array(1.0, np.float32), "one"),
        numpy_helper.from_array(np.array(0.8, np.float32), "c08"),
        numpy_helper.from_array(np.array([1], np.int64), "shape1"),
        numpy_helper.from_array(np.array([1, outputs], np.int64), "shape2"),
    ]
    graph = helper.make_graph(nodes, "genderage", [inp], [out], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def emotion_model(path: Path, *, labels: int = 7) -> Path:
    """Contract model over FER2013's labels: logits = W @ [m, 1] with m the mean pixel in
    [-1, 1], so a bright face is "happy" (index 3) and a dark one "sad" (index 4)."""
    inp = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 64, 64])
    out = helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", labels])
    weights = np.zeros((labels, 2), np.float32)
    weights[3 % labels] = (8.0, 0.0)  # happy grows with brightness
    weights[4 % labels] = (-8.0, 0.0)  # sad grows with darkness
    weights[-1] = (0.0, 3.0)  # neutral: a constant that wins near mid grey
    nodes = [
        helper.make_node("ReduceMean", ["x", "axes"], ["m"], keepdims=0),  # (N,)
        helper.make_node("Unsqueeze", ["m", "ax1"], ["m1"]),  # (N, 1)
        helper.make_node("Concat", ["m1", "ones"], ["feat"], axis=1),  # (N, 2) via broadcast
        helper.make_node("MatMul", ["feat", "wt"], ["scores"]),
    ]
    inits = [
        numpy_helper.from_array(np.array([1, 2, 3], np.int64), "axes"),
        numpy_helper.from_array(np.array([1], np.int64), "ax1"),
        numpy_helper.from_array(weights.T.copy(), "wt"),
    ]
    # Concat needs equal batch sizes: build the ones column from m (m * 0 + 1)
    nodes[2:2] = [
        helper.make_node("Mul", ["m1", "zero"], ["z"]),
        helper.make_node("Add", ["z", "one"], ["ones"]),
    ]
    inits += [
        numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
        numpy_helper.from_array(np.array(1.0, np.float32), "one"),
    ]
    graph = helper.make_graph(nodes, "emotion", [inp], [out], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
