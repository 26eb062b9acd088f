"""Overrides of a tiny synthetic run (shared by the classification tests and their subprocesses)."""


def tiny_overrides(tmp_path, method="baseline", epochs=2, **extra):
    values = {
        "name": f"tiny-{method}", "output_dir": str(tmp_path), "seed": 3,
        "data.name": "synthetic", "data.train_size": 96, "data.test_size": 64, "data.num_classes": 4,
        "data.image_size": 8, "data.batch_size": 16, "data.test_batch_size": 32, "data.num_workers": 0,
        "model.name": "resnet8", "method.name": method, "optim.epochs": epochs, "optim.milestones": "[]",
        "optim.lr": 0.05, "runtime.device": "cpu", "runtime.deterministic": True, "runtime.log_every": 1000,
    }
    values.update(extra)
    return [f"{k}={v}" for k, v in values.items()]
