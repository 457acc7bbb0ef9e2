"""rdgap.validation: models, corpus, distortion metrics and the validate job."""
