"""Losses and training loops: flow matching, CNFs, OT-Flow, MFGs, neural ODEs, mean-field nets."""

from .._deprecated import aliases as _aliases
from ._char_transformer import (
    CharTransformer as CharTransformer,
    NextCharacterLoss as NextCharacterLoss,
    sequence_loss as sequence_loss,
)
from ._cnf import CNF as CNF, LikelihoodLoss as LikelihoodLoss
from ._depth_control import (
    DepthControl as DepthControl,
    DepthControlLoss as DepthControlLoss,
    in_context_map as in_context_map,
)
from ._diffusion_link import ConvertedField as ConvertedField, convert as convert
from ._flow_matching import (
    FlowMatchingLoss as FlowMatchingLoss,
    Reversed as Reversed,
    conditional_path as conditional_path,
    couple as couple,
    generate as generate,
    log_likelihood as log_likelihood,
)
from ._mfg import (
    MeanFieldGame as MeanFieldGame,
    crowd_game as crowd_game,
    transport_game as transport_game,
)
from ._neural_ode import (
    ClassificationLoss as ClassificationLoss,
    NeuralODEClassifier as NeuralODEClassifier,
    accuracy as accuracy,
    classification_loss as classification_loss,
)
from ._otflow import OTFlow as OTFlow, OTFlowLoss as OTFlowLoss
from ._train import FitResult as FitResult, fit as fit, quiet as quiet
from ._trajectory_inference import (
    GradientPotential as GradientPotential,
    SnapshotLoss as SnapshotLoss,
    velocity_error as velocity_error,
)

# every loss is an equinox Module (fit's compilation is keyed on its structure and static fields)
__getattr__ = _aliases(globals(), {"depth_control_loss": "DepthControlLoss"})
