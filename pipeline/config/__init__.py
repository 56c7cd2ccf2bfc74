"""Configuration: one YAML file, validated once at the edge by pydantic. Inner code takes explicit arguments."""

from pipeline.config.load import config_to_yaml, load_config
from pipeline.config.models import (
    ArchiveConfig,
    Config,
    DaskConfig,
    ExportConfig,
    ProductConfig,
    QualityConfig,
    SamplingConfig,
    SeasonsConfig,
    SourceConfig,
)

__all__ = [
    "ArchiveConfig",
    "Config",
    "DaskConfig",
    "ExportConfig",
    "ProductConfig",
    "QualityConfig",
    "SamplingConfig",
    "SeasonsConfig",
    "SourceConfig",
    "config_to_yaml",
    "load_config",
]
