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
