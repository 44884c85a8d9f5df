//! Turning `clip.device` and `clip.dtype` into a candle device and dtype.

use std::sync::OnceLock;

use candle_core::{DType, Device};

use super::error::EngineError;
use crate::config::{DeviceSetting, DtypeSetting};

/// What `clip.device = 'auto'` means in this process, when the process was
/// told (a Ballista executor started with `--device cuda:1`): sessions
/// arrive with the client's settings, and `auto`, the default, must pick
/// this executor's device rather than guess.
static PROCESS_DEVICE: OnceLock<DeviceSetting> = OnceLock::new();

/// Make `auto` mean `setting` in this process. Once per process: a second
/// call gets the device already set back, as the error.
pub fn set_process_device(setting: DeviceSetting) -> Result<(), DeviceSetting> {
    PROCESS_DEVICE.set(setting)?;
    Ok(())
}

/// The device `setting` names on this machine and build.
pub fn select_device(setting: DeviceSetting) -> Result<Device, EngineError> {
    match setting {
        DeviceSetting::Cpu => Ok(Device::Cpu),
        DeviceSetting::Auto => match PROCESS_DEVICE.get() {
            Some(&process) if process != DeviceSetting::Auto => select_device(process),
            _ => auto_device(),
        },
        DeviceSetting::Cuda(n) => {
            if !candle_core::utils::cuda_is_available() {
                return Err(EngineError::CudaNotBuilt { ordinal: n });
            }
            Device::new_cuda(n)
                .map_err(|source| EngineError::DeviceUnavailable { ordinal: n, source })
        }
    }
}

/// `auto` on this machine and build: the first GPU when there is one.
fn auto_device() -> Result<Device, EngineError> {
    if !candle_core::utils::cuda_is_available() {
        return Ok(Device::Cpu);
    }
    // A CUDA build on a machine without a usable GPU runs on the CPU, but
    // says so: a GPU that failed (driver error, an earlier illegal access)
    // must not silently turn into a 100x slower run.
    Device::new_cuda(0).or_else(|e| {
        static WARNED: std::sync::Once = std::sync::Once::new();
        WARNED.call_once(|| {
            log::warn!("clip.device = 'auto': cuda:0 is unusable ({e}); running on the CPU");
            eprintln!(
                "warning: clip.device = 'auto': cuda:0 is unusable ({e}); running on the CPU"
            );
        });
        Ok(Device::Cpu)
    })
}

/// The dtype `setting` names for `device`: `auto` is f32 on the CPU and
/// f16 on a GPU.
pub fn select_dtype(setting: DtypeSetting, device: &Device) -> DType {
    match setting {
        DtypeSetting::F32 => DType::F32,
        DtypeSetting::F16 => DType::F16,
        DtypeSetting::Bf16 => DType::BF16,
        DtypeSetting::Auto => {
            if device.is_cpu() {
                DType::F32
            } else {
                DType::F16
            }
        }
    }
}

/// A short name for a device, for cache keys and messages.
pub fn device_name(device: &Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => "cpu".to_string(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_build_explains_missing_cuda() {
        if candle_core::utils::cuda_is_available() {
            return;
        }
        let err = select_device(DeviceSetting::Cuda(0)).unwrap_err();
        assert!(matches!(err, EngineError::CudaNotBuilt { ordinal: 0 }));
        assert!(err.to_string().contains("--features cuda"), "{err}");
        assert!(select_device(DeviceSetting::Auto).unwrap().is_cpu());
    }

    #[test]
    fn auto_dtype_is_f32_on_cpu() {
        assert_eq!(select_dtype(DtypeSetting::Auto, &Device::Cpu), DType::F32);
        assert_eq!(select_dtype(DtypeSetting::Bf16, &Device::Cpu), DType::BF16);
    }
}
