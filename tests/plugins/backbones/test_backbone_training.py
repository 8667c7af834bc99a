"""Contract: every registered backbone trains with every registered loss.

Two SGD steps on CPU at the smallest input each backbone accepts, a
P x K batch (2 identities x 2 images, which suits classifier and triplet
losses alike): the loss stays finite, the gradients are finite and reach the
backbone, and the weights move.
"""

from __future__ import annotations

import copy

import pytest
import torch

from harness.registry import Registry

REG = Registry()
BACKBONES = REG.names("backbone")
LOSSES = REG.names("loss")
STEPS = 2
LABELS = torch.tensor([0, 0, 1, 1])
NUM_CLASSES = 2


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _small_options(name: str) -> tuple[dict, tuple[int, int]]:
    """Options building ``name`` at its smallest input size, and that size."""
    spec = REG.get("backbone", name)
    low = spec.meta.get("min_input_size")
    if low is not None and "input_size" in spec.option_fields():
        return {"input_size": str(low)}, (low, low)
    return {}, tuple(spec.input_size)


_CACHE: dict[str, tuple[torch.nn.Module, dict, tuple[int, int]]] = {}


def _fresh_backbone(name: str):
    """The backbone with its initial weights (built once per name: IR-100 is slow to init)."""
    if name not in _CACHE:
        torch.manual_seed(0)
        options, size = _small_options(name)
        model = REG.build("backbone", name, options)
        _CACHE[name] = (model, copy.deepcopy(model.state_dict()), size)
    model, state, size = _CACHE[name]
    model.load_state_dict(state)
    return model, size


@pytest.mark.parametrize("loss_name", LOSSES)
@pytest.mark.parametrize("backbone_name", BACKBONES)
def test_backbone_trains_with_loss(backbone_name, loss_name):
    torch.manual_seed(1)
    backbone, (h, w) = _fresh_backbone(backbone_name)
    embedding_size = REG.get("backbone", backbone_name).embedding_size
    if hasattr(backbone, "embedding_size"):
        embedding_size = backbone.embedding_size
    loss = REG.build("loss", loss_name, {}, embedding_size=embedding_size, num_classes=NUM_CLASSES)
    backbone.train()
    loss.train()
    params = [p for p in list(backbone.parameters()) + list(loss.parameters()) if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=5e-4)
    images = torch.randn(len(LABELS), 3, h, w)
    first = [p.detach().clone() for p in backbone.parameters()]

    for step in range(STEPS):
        optimizer.zero_grad(set_to_none=True)
        embeddings = backbone(images)
        assert embeddings.shape == (len(LABELS), embedding_size)
        value = loss(embeddings, LABELS)
        assert value.dim() == 0
        assert torch.isfinite(value), f"step {step}: loss {float(value)}"
        value.backward()
        grads = [p.grad for p in backbone.parameters() if p.grad is not None]
        assert grads, "no gradient reached the backbone"
        assert all(torch.isfinite(g).all() for g in grads), f"step {step}: non-finite gradient"
        optimizer.step()

    assert all(torch.isfinite(p).all() for p in backbone.parameters())
    moved = sum(not torch.equal(a, b.detach()) for a, b in zip(first, backbone.parameters()))
    assert moved > 0, "no backbone weight changed"
    if REG.get("loss", loss_name).needs_classifier:
        with torch.no_grad():
            assert loss.logits(backbone(images)).shape == (len(LABELS), NUM_CLASSES)
