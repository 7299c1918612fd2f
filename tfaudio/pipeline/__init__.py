"""Extraction at scale: a dataset's clips into vectors, through the embedding store, on this
machine or on Apache Beam.

* run.py: `run_embedding`, what `tfaudio embed` calls: picks the runner (local or Beam) and the
  output layout (one file or shards, in a format of `tfaudio.store.formats`);
* units.py: work units (a clip, or a window of a long one, as its representation declares) and
  `embed_windows`, the one function both runners embed a batch with;
* local.py: the local runner (`embed_dataset`, `embed_to_folder`); table.py: what it returns;
  writer.py: sharded outputs with their manifest, written as the vectors come;
* beam.py (the graph), beam_fns.py (its steps), beam_io.py (outputs on any filesystem, resume),
  beam_finish.py (every clip accounted for, then publish),
  sources.py (clip listings and local copies of remote files): the same on Apache Beam.

Nothing here names a model: models are known through `tfaudio.models.base.Representation`.
"""
