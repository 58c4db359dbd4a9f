"""spark-submit entrypoint: build the feature partitions of a day or a range of days.

    spark-submit jobs/build_features.py --pipeline flights --ds 2013-01-05
    spark-submit jobs/build_features.py --pipeline flights --from 2013-01-01 --to 2013-12-31

A thin shell around :func:`runway_mlops.stages.features.main`; the transforms live in the
package so they are unit-tested without spark-submit and shared with training/serving.
"""

import sys

from runway_mlops.stages.features import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
