"""Evaluation: the paper's metrics (SAD, MSE, Grad, Conn), the ICM-57-style evaluator and its tables and report."""
