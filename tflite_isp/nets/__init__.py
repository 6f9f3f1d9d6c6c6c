"""Networks: the architectures (Keras, real layers), their shared layers, the recipes that configure them."""
