"""Data contracts (schemas, reject codes) and the readers trainers use."""
