/** tap's coverage map: every test file is measured against `lib/` only (a test may import bench or example code). */
export default (): string => 'lib/**'
