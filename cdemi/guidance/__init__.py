"""The paper's contribution: condensed samples guide model inversion through a
class-conditional discriminator on the teacher's features (feature alignment)."""
from .alignment import FeatureAlignment, check_condensed_matches
from .diagnostics import FeatureDiagnostics, class_distance, class_means
from .discriminator import FeatureDiscriminator, discriminator_loss, generator_adversarial_loss
from .features import PENULTIMATE, FeatureTap, feature_dim

__all__ = ["FeatureAlignment", "FeatureDiagnostics", "FeatureDiscriminator", "FeatureTap", "PENULTIMATE",
           "check_condensed_matches", "class_distance", "class_means", "discriminator_loss", "feature_dim",
           "generator_adversarial_loss"]
