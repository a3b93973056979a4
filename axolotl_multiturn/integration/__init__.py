"""What axolotl calls: the plugin and its hooks (`plugin`), the dataset pass (`dataset`), a dataset entry's
settings (`entry`, `options`), preference training (`rl`, `trainer`). The dataset type itself stays at
`axolotl_multiturn.chat`, the path configs name."""
