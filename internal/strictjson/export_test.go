package strictjson

// CheckNames exposes checkNames to the benchmarks and fuzz targets.
var CheckNames = checkNames
