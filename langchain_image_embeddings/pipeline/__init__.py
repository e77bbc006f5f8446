"""The streaming, batched embedding pipeline: inputs to decoded, preprocessed batches to vectors.

Decoding runs on a pool of threads sized by measurement, reads ahead a bounded number of
batches, decodes JPEGs on the GPU where there is one, and reports progress and failures per
input; asked to (``hash_inputs=True``), it reports the SHA-256 of the exact bytes each
vector was decoded from. :class:`~langchain_image_embeddings.embeddings.ImageEmbeddings`
drives it; use it directly to stream vectors without a store.

Example:
    .. code-block:: python

        from langchain_image_embeddings.encoders import create_encoder
        from langchain_image_embeddings.pipeline import ImagePipeline

        pipeline = ImagePipeline(create_encoder("timm:efficientnet_lite0"), batch_size=32)
        for batch in pipeline.run(["a.jpg", "b.jpg"]):
            print(batch.indices, batch.vectors.shape)
"""

from __future__ import annotations

from langchain_image_embeddings.pipeline._decode_pool import DecodeStats
from langchain_image_embeddings.pipeline._report import BatchResult, PipelineProgress
from langchain_image_embeddings.pipeline._stream import ImagePipeline

__all__ = ["BatchResult", "DecodeStats", "ImagePipeline", "PipelineProgress"]
