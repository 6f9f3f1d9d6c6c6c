"""Export: Keras to .tflite (FP32/FP16/INT8/QAT), the flatbuffer reader, delegate checks, fidelity, ONNX."""
