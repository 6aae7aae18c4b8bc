// Package stages holds the stages of a zsync transfer, named after pyzsync's
// staged API:
//
//	BlockChecksums → Delta → Blueprint → Fetch → Patcher (easy_patch) → Verify
//
// BlockChecksums turns a file into its control file's block records. Delta
// scans local seed files for blocks of the target; Blueprint turns its
// matches into a plan: copies from seeds and missing byte ranges. Fetch reads
// the missing ranges from a RangeSource and checks every block's strong hash.
// A Patcher writes blocks into the output with positioned writes, in any
// order, over as many calls as needed. Verify checks the whole-file hash.
//
// Each stage is a plain function or type usable on its own; the functions
// whose names end in Stage add the same work to a pipeline.Pipeline, so a
// library user can assemble a custom pipeline (another block source, another
// sink) from the same parts.
package stages
