export { createCioSimulator, CioSimulator, type Fault, type RecordedRequest, type SimulatorOptions } from './simulator.ts'
