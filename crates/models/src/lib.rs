//! CIFAR ResNet-20..110, VGG-16-BN and DenseNet-40 in Candle, each built from a configuration that
//! lists every prunable width, so a pruned model is the same code with smaller numbers.
//!
//! See `DESIGN.md`, section 3. Nothing is implemented yet.
