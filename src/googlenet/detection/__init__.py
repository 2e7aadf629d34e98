"""Section 8 of the paper: GoogLeNet's detector (R-CNN with the Inception network as region classifier).

Detection data (:mod:`.datasets`), region proposals (:mod:`.proposals`, Selective Search and
MultiBox), and the ILSVRC / PASCAL VOC evaluation (:mod:`.metrics`). This package is a consumer of
the classifier code: it imports models, data, training and inference; nothing outside it imports it.
"""
